"""JSON Lines: one object per line, read row by row, as fixed-schema batches, or as staged batches."""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Collection, Generator, Iterator, Sequence
from functools import partial
from typing import Any

import pyarrow as pa

from airflow_provider_aiq_braze.staging._streams import READ_ERRORS, READ_SIZE, open_binary, read_error
from airflow_provider_aiq_braze.staging.batch import ROW_NUMBER_COLUMN, StagedBatch
from airflow_provider_aiq_braze.staging.jsonl_arrow import arrow_jsonl_batches
from airflow_provider_aiq_braze.staging.locate import StagedFile
from airflow_provider_aiq_braze.staging.rows import RejectHandler, StagedRow, cut
from airflow_provider_aiq_braze.staging.text_batches import TextBatches

#: Longest JSON Lines line, in bytes; a longer line is rejected (and skipped without loading it).
JSONL_LINE_LIMIT = 1 << 20

#: Reject reason for JSON nested deeper than the parser's recursion limit.
JSON_TOO_DEEP = "invalid JSON: arrays or objects nested too deeply"

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def jsonl_rows(
    file: StagedFile,
    columns: Collection[str] | None,
    required: Collection[str],
    any_of: Collection[Collection[str]],
) -> Iterator[StagedRow]:
    """Parse a JSON Lines file into rows (objects keep their JSON types and key order).

    :param file: the staged file.
    :param columns: the fields to keep (``None``: all).
    :param required: fields every object must have (else the row is rejected).
    :param any_of: groups of fields of which every object must have one each.
    """
    uri = file.uri
    decode = json.JSONDecoder().decode
    required_set = frozenset(required)
    groups = [frozenset(g) for g in any_of if g]
    kept = list(columns) if columns is not None else None
    n = 0
    line_no = 0
    with open_binary(file) as (stream, _):
        try:
            if stream.peek(3)[:3] == codecs.BOM_UTF8:
                stream.read(3)
            readline = partial(stream.readline, JSONL_LINE_LIMIT + 1)
            for line in iter(readline, b""):
                line_no += 1
                n += 1
                try:
                    obj = decode(line.decode("utf-8"))
                except RecursionError:
                    yield StagedRow(uri, n, None, f"{JSON_TOO_DEEP} (line {line_no})", _raw(line))
                    continue
                except ValueError as exc:
                    problem = _jsonl_problem(stream, line, exc)
                    if problem is None:  # blank line
                        n -= 1
                        continue
                    yield StagedRow(uri, n, None, f"{problem} (line {line_no})", _raw(line))
                    continue
                if type(obj) is not dict:
                    problem = _not_an_object(stream, line, obj)
                elif required_set or groups:
                    problem = _missing_fields(obj, required_set, groups)
                else:
                    problem = None
                if problem:
                    yield StagedRow(uri, n, None, f"{problem} (line {line_no})", _raw(line))
                    continue
                if kept is not None:
                    obj = {k: obj[k] for k in kept if k in obj}
                yield StagedRow(uri, n, obj)
        except READ_ERRORS as exc:
            raise read_error(file, n, exc) from exc


def _raw(line: bytes) -> str:
    return cut(line.decode("utf-8", "replace").rstrip("\r\n"))


def _not_an_object(stream: io.BufferedReader[Any], line: bytes, obj: Any) -> str:
    """Why a parsed line is not a row (a cut long line that happened to parse, or not an object)."""
    if len(line) > JSONL_LINE_LIMIT and not line.endswith(b"\n"):
        _skip_rest_of_line(stream)
        return f"line longer than {JSONL_LINE_LIMIT} bytes"
    return f"expected a JSON object, found {_JSON_TYPES.get(type(obj), 'number')}"


def _jsonl_problem(stream: io.BufferedReader[Any], line: bytes, exc: ValueError) -> str | None:
    """Why a JSON Lines line failed to parse, or ``None`` for a blank line."""
    if len(line) > JSONL_LINE_LIMIT and not line.endswith(b"\n"):
        _skip_rest_of_line(stream)
        return f"line longer than {JSONL_LINE_LIMIT} bytes"
    if not line.strip():
        return None
    if b"\0" in line:
        return "contains a NUL byte"
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 byte sequence at byte {exc.start + 1}"
    try:  # parse again without the line break, so the column is that of the line
        json.loads(line.decode("utf-8").rstrip("\r\n"))
    except json.JSONDecodeError as clean:
        return f"invalid JSON at column {clean.colno}: {clean.msg}"
    except ValueError:
        pass
    return f"invalid JSON: {exc}"


def _skip_rest_of_line(stream: io.BufferedReader[Any]) -> None:
    while True:
        chunk = stream.readline(READ_SIZE)
        if not chunk or chunk.endswith(b"\n"):
            return


def _missing_fields(
    obj: dict[str, Any], required: frozenset[str], groups: list[frozenset[str]]
) -> str | None:
    parts = []
    if not required.issubset(obj):
        parts.append("missing required field(s): " + ", ".join(sorted(required.difference(obj))))
    parts.extend("needs at least one of: " + ", ".join(sorted(g)) for g in groups if g.isdisjoint(obj))
    return "; ".join(parts) or None


def json_text(value: Any) -> str | None:
    """A JSON value as the text batches hold it: a string as is, anything else as compact JSON.

    :param value: the value.
    """
    if value is None or type(value) is str:
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def jsonl_batches(
    file: StagedFile,
    columns: Sequence[str] | None,
    batch_size: int,
    required: Collection[str],
    any_of: Collection[Collection[str]],
    on_reject: RejectHandler,
    row_number_column: str | None,
) -> Iterator[pa.RecordBatch]:
    """JSON Lines as record batches of text columns, of one schema (``columns``, or the first object's).

    :param file: the staged file.
    :param columns: the fields to return, in order (``None``: the first object's).
    :param batch_size: rows per batch.
    :param required: as for :func:`jsonl_rows`.
    :param any_of: as for :func:`jsonl_rows`.
    :param on_reject: called with each rejected row (an object with other fields than the first's too).
    :param row_number_column: the name of a column of row numbers to add, if any.
    """
    names: list[str] | None = list(columns) if columns is not None else None
    known: frozenset[str] | None = None
    builder: TextBatches | None = None
    for row in jsonl_rows(file, None, required, any_of):
        data = row.data
        if data is None:
            on_reject(row)
            continue
        if names is None:
            names = list(data)
            known = frozenset(names)
        elif known is not None and not known.issuperset(data):
            extra = ", ".join(sorted(set(data).difference(known)))
            row.error = (
                f"field(s) {extra} are not among the first object's fields ({', '.join(names)}); "
                "pass columns= to choose the fields"
            )
            row.data = None
            on_reject(row)
            continue
        if builder is None:
            builder = TextBatches(names, None, batch_size, row_number_column)
        batch = builder.add(row.row_number, [json_text(data.get(name)) for name in names])
        if batch is not None:
            yield batch
    if builder is not None and (batch := builder.finish()) is not None:
        yield batch


def jsonl_staged_batches(
    file: StagedFile,
    columns: Sequence[str] | None,
    batch_size: int,
    required: Collection[str],
    any_of: Collection[Collection[str]],
    on_reject: RejectHandler,
) -> Generator[StagedBatch, None, None]:
    """JSON Lines as :class:`StagedBatch` es: every object's fields (or ``columns``), types marked.

    Unlike :func:`jsonl_batches`, objects may have different fields: a batch's columns are all the
    fields its objects have, in the order first met. Arrow's parser reads the leading chunks of
    plain text objects (:mod:`.jsonl_arrow`); the Python decoder reads the rest.

    :param file: the staged file.
    :param columns: the only fields to read, if given (the objects are then not kept).
    :param batch_size: rows per batch.
    :param required: as for :func:`jsonl_rows`.
    :param any_of: as for :func:`jsonl_rows`.
    :param on_reject: called with each rejected row.
    """
    done, finished = yield from arrow_jsonl_batches(
        file, columns, batch_size, required, any_of, JSONL_LINE_LIMIT
    )
    if finished:
        return
    builder = _StagedJsonl(file.uri, columns)
    for row in jsonl_rows(file, None, required, any_of):
        if row.row_number <= done:  # read by the fast path (always a good row)
            continue
        if row.data is None:
            on_reject(row)
            continue
        problem = builder.add(row.row_number, row.data)
        if problem is not None:
            row.error, row.data = problem, None
            on_reject(row)
            continue
        if builder.rows >= batch_size:
            yield builder.take()
    if builder.rows:
        yield builder.take()


class _StagedJsonl:
    """Collects JSON objects and turns them into a :class:`StagedBatch`.

    Each object is kept as the tuple of its values in the batch's column order; an object whose
    fields come in another order is kept whole too (the row path needs its own order).

    :param uri: the file's URI.
    :param columns: fixed columns (the objects' other fields are ignored), or ``None``.
    """

    def __init__(self, uri: str, columns: Sequence[str] | None) -> None:
        self._uri = uri
        self._fixed = columns is not None
        self._names: tuple[str, ...] = tuple(columns or ())
        self._values: list[tuple[Any, ...]] = []
        self._numbers: list[int] = []
        self._reordered: dict[int, dict[str, Any]] = {}

    @property
    def rows(self) -> int:
        """Rows collected so far."""
        return len(self._numbers)

    def add(self, number: int, obj: dict[str, Any]) -> str | None:
        """Collect one object.

        :param number: its row number.
        :param obj: the object.
        :return: the reason the object is rejected instead, if it is.
        """
        names = self._names
        if self._fixed:
            values = tuple(map(obj.get, names))
        else:
            keys = tuple(obj)
            if keys != names and keys != names[: len(keys)]:
                new = tuple(k for k in keys if k not in names)
                if any(k[:1] == "\0" for k in new):
                    return "a field name starts with a NUL character, which no column name may"
                names = self._names = names + new
                if keys != names[: len(keys)]:  # another order than the columns': keep it whole
                    self._reordered[len(self._numbers)] = obj
                    values = tuple(map(obj.get, names))
                    self._values.append(values)
                    self._numbers.append(number)
                    return None
            values = tuple(obj.values())
        self._values.append(values)
        self._numbers.append(number)
        return None

    def take(self) -> StagedBatch:
        """The batch of the rows collected; start a new one."""
        names, width = self._names, len(self._names)
        rows = [v if len(v) == width else v + (None,) * (width - len(v)) for v in self._values]
        arrays: list[pa.Array] = []
        marks: dict[str, pa.Array] = {}
        for name, values in zip(
            names, zip(*rows, strict=True) if rows and width else [()] * width, strict=True
        ):
            try:
                arrays.append(pa.array(values, pa.string()))
            except (pa.ArrowTypeError, pa.ArrowInvalid):  # a value that is not a string
                arrays.append(pa.array([json_text(v) for v in values], pa.string()))
                marks[name] = pa.array([v is not None and v.__class__ is not str for v in values], pa.bool_())
        arrays.append(pa.array(self._numbers, pa.int64()))
        batch = pa.RecordBatch.from_arrays(arrays, names=[*names, ROW_NUMBER_COLUMN])
        staged = StagedBatch(
            self._uri,
            batch,
            json_cells=marks,
            exact=self._exact(marks),
            objects=None if self._fixed else _Objects(names, self._values, self._reordered),
        )
        self._values, self._numbers, self._reordered = [], [], {}
        return staged

    def _exact(self, marks: dict[str, pa.Array]) -> pa.Array | bool:
        """Rows whose columns hold them exactly: text values only, in the columns' order."""
        if not marks and not self._reordered:
            return True
        inexact = [False] * len(self._numbers)
        for index in self._reordered:
            inexact[index] = True
        for column in marks.values():
            for index, marked in enumerate(column.to_pylist()):
                inexact[index] = inexact[index] or marked
        return pa.array([not i for i in inexact], pa.bool_())


class _Objects(Sequence[dict[str, Any]]):
    """The objects of a JSON Lines batch, rebuilt when asked for (most never are).

    :param names: the batch's columns.
    :param values: each object's values, in the columns' order (a prefix of them).
    :param reordered: the objects whose fields come in another order, by position.
    """

    def __init__(
        self, names: tuple[str, ...], values: list[tuple[Any, ...]], reordered: dict[int, dict[str, Any]]
    ) -> None:
        self._names = names
        self._values = values
        self._reordered = reordered

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        whole = self._reordered.get(index)
        if whole is not None:
            return whole
        return dict(zip(self._names, self._values[index], strict=False))

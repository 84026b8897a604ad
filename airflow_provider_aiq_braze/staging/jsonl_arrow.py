"""JSON Lines as staged batches through Arrow's JSON parser, while it provably reads what Python's would.

The fast path of :func:`~airflow_provider_aiq_braze.staging.jsonl.jsonl_staged_batches`. Arrow
parses a chunk of whole lines in C++, about ten times faster than ``json.loads`` per line, but it
types values (numbers, timestamps, nested data) and does not tell the order of each object's
fields. So a chunk is taken only when every value is a JSON string or ``null``, every object has
the same fields, once each, in the same order, and nothing could make the two parsers disagree: no
backslash (no escapes: keys and strings are their bytes), no control character, valid UTF-8, no
line over the line limit, one object per line. The chunk's first object gives the columns; Arrow
reads the chunk with exactly those (all text), and the position of each ``"field":`` in each line
proves the order. At the first chunk that does not qualify the fast path stops, and the Python path
reads the rest of the file, rejects and all.
"""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Collection, Generator, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from airflow_provider_aiq_braze.staging._streams import READ_ERRORS, open_binary
from airflow_provider_aiq_braze.staging.batch import ROW_NUMBER_COLUMN, StagedBatch
from airflow_provider_aiq_braze.staging.locate import StagedFile

#: Bytes read per chunk of the fast path (a chunk of whole lines).
ARROW_JSONL_BLOCK = 1 << 20

#: Bytes JSON text may not hold for the fast path: control characters but the line breaks, and the
#: backslash (escapes are left to Python's decoder).
_UNSAFE = bytes(b for b in range(0x20) if b not in (0x0A, 0x0D)) + b"\\"

_ONE = pa.scalar(1, pa.int64())

#: Characters with a meaning in a regular expression.
_REGEX_SPECIAL = frozenset("\\.^$|?*+()[]{}")


class _GiveUp(Exception):
    """The fast JSON Lines path stops here; the Python path goes on."""


def arrow_jsonl_batches(
    file: StagedFile,
    columns: Sequence[str] | None,
    batch_size: int,
    required: Collection[str],
    any_of: Collection[Collection[str]],
    line_limit: int,
) -> Generator[StagedBatch, None, tuple[int, bool]]:
    """Yield the leading staged batches Arrow reads exactly as the Python path would.

    :param file: the staged file.
    :param columns: fixed columns (other fields are ignored), or ``None`` for every field.
    :param batch_size: rows per batch at most.
    :param required: fields every object must have (a chunk where one lacks them stops the path).
    :param any_of: groups of fields of which every object must have one.
    :param line_limit: the longest line, in bytes, the Python path reads.
    :return: (how many rows were yielded, whether that is the whole file).
    """
    done = 0
    finished = False
    with open_binary(file) as (stream, _):
        try:
            for chunk in _chunks(stream, line_limit):
                table = _read_chunk(chunk, columns, required, any_of, line_limit)
                if table is None:
                    break
                count = table.num_rows
                numbers = pc.cumulative_sum(pa.repeat(_ONE, count), start=done)
                whole = table.append_column(ROW_NUMBER_COLUMN, numbers)
                for batch in whole.to_batches(max_chunksize=batch_size):
                    if batch.num_rows:
                        yield StagedBatch(file.uri, batch)
                done += count
            else:
                finished = True
        except (_GiveUp, pa.ArrowException, *READ_ERRORS):
            pass  # the Python path reports read errors (and rejects bad rows) as it always has
    return done, finished


def _chunks(stream: io.BufferedReader[Any], line_limit: int) -> Iterator[bytes]:
    """The file's bytes, a chunk of whole lines at a time (a byte order mark left out)."""
    pending = stream.read(ARROW_JSONL_BLOCK)
    if pending.startswith(codecs.BOM_UTF8):
        pending = pending[len(codecs.BOM_UTF8) :]
    while True:
        data = stream.read(ARROW_JSONL_BLOCK)
        if not data:
            if pending:
                yield pending
            return
        pending += data
        cut = pending.rfind(b"\n") + 1
        if cut:
            chunk, pending = pending[:cut], pending[cut:]
            yield chunk
        elif len(pending) > line_limit:
            raise _GiveUp  # a line over the limit: the Python path rejects it


def _read_chunk(
    chunk: bytes,
    columns: Sequence[str] | None,
    required: Collection[str],
    any_of: Collection[Collection[str]],
    line_limit: int,
) -> pa.Table | None:
    """The chunk's rows as text columns, or ``None`` when it does not qualify (see the module)."""
    if len(chunk.translate(None, _UNSAFE)) != len(chunk) or not _is_utf8(chunk):
        return None
    lines = [line for line in chunk.split(b"\n") if line.strip()]
    if not lines or max(map(len, lines)) > line_limit:
        return None
    try:
        first = json.loads(lines[0])
    except ValueError:
        return None
    if type(first) is not dict or not first:
        return None
    # with fixed columns, every one of them: a later object may have one the first lacks
    names = list(first) if columns is None else list(dict.fromkeys(columns))
    if any(first.get(name) is not None and type(first[name]) is not str for name in names):
        return None
    text = pa.array(lines, pa.binary()).cast(pa.string())  # valid UTF-8: checked above
    if columns is None:  # every object: the first one's fields, once each, in its order
        if not pc.all(pc.match_substring_regex(text, _object_pattern(list(first)))).as_py():
            return None
    elif not _present(text, required, any_of):
        return None
    table = pa_json.read_json(
        pa.BufferReader(chunk),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=len(chunk) + 1),
        parse_options=pa_json.ParseOptions(
            explicit_schema=pa.schema([(name, pa.string()) for name in names]),
            newlines_in_values=False,
            unexpected_field_behavior="error" if columns is None else "ignore",
        ),
    )
    if table.num_rows != len(lines):
        return None
    if columns is None:
        if not set(required).issubset(first) or any(g and set(g).isdisjoint(first) for g in any_of):
            return None
        return table.combine_chunks()
    return pa.table({c: table.column(c) for c in columns})


def _object_pattern(fields: list[str]) -> str:
    """A regular expression matching a line that holds one JSON object of exactly ``fields``, in that
    order, each a string or ``null`` (valid only for text without backslashes or control characters,
    where a string is a quote, anything but a quote, a quote)."""
    space = "[ \\t\\r]*"
    value = '(?:"[^"]*"|null)'
    members = f"{space},{space}".join(f'"{_literal(name)}"{space}:{space}{value}' for name in fields)
    return f"^{space}\\{{{space}{members}{space}\\}}{space}$"


def _literal(text: str) -> str:
    """``text`` as a regular expression matching it literally."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)


def _present(text: pa.Array, required: Collection[str], any_of: Collection[Collection[str]]) -> bool:
    """Whether every line has each required field once, and one of each group (vectorised).

    Without backslashes in the chunk, ``"name":`` can only be the key ``name`` (a quote inside a
    string would be escaped).
    """

    def count(name: str) -> pa.Array:
        return pc.count_substring(text, json.dumps(name, ensure_ascii=False) + ":")

    for name in required:
        if not pc.all(pc.equal(count(name), 1)).as_py():
            return False
    for group in any_of:
        present = [pc.greater(count(name), 0) for name in group]
        if present and not pc.all(_any_of(present)).as_py():
            return False
    return True


def _any_of(masks: list[pa.Array]) -> pa.Array:
    result = masks[0]
    for mask in masks[1:]:
        result = pc.or_(result, mask)
    return result


def _is_utf8(chunk: bytes) -> bool:
    if chunk.isascii():
        return True
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

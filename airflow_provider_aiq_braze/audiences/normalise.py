"""Normalising the input: the caller's batches become compact, typed batches for DuckDB (in Arrow).

Identifiers, audience ids and split ids are read by the package's one identifier rule
(:mod:`airflow_provider_aiq_braze.contracts.identifiers`), vectorised; a value the rule refuses
makes its row a reject with the rule's reason (``id_problem``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_aiq_braze.audiences.model import FALSE_WORDS, TRUE_WORDS, DeltaInput
from airflow_provider_aiq_braze.contracts.identifiers import (
    IDENTIFIER_KINDS,
    Refused,
    identifier_array,
    refusal_texts,
)
from airflow_provider_aiq_braze.contracts.identifiers import identifier as identifier_text
from airflow_provider_aiq_braze.staging import json_cells_column

#: The internal names of the columns read by the identifier rule, and the one of each identifier kind.
_ID_INTERNALS = frozenset({"c_aud", "c_split", "c_ext", "c_bid"})
_ID_COLUMN_OF = {"external_id": "c_ext", "braze_id": "c_bid"}


class _Identifiers:
    """The id columns of one input batch read by the one identifier rule (vectorised).

    :param batch: the input batch (JSON Lines batches mark non-string cells, see
        :func:`~airflow_provider_aiq_braze.staging.json_cells_column`).
    :param spec: ``(internal name, source column, required)`` of the columns read.
    :param columns: the columns read, by internal name.
    """

    def __init__(
        self, batch: pa.RecordBatch, spec: list[tuple[str, str, bool]], columns: dict[str, pa.Array]
    ) -> None:
        self._n = batch.num_rows
        self._sources = {internal: source for internal, source, _ in spec}
        self._read: dict[str, tuple[pa.Array, Refused, pa.Array | None]] = {}
        names = batch.schema.names
        for internal in _ID_INTERNALS.intersection(columns):
            marks = json_cells_column(self._sources[internal])
            cells = batch.column(marks) if marks in names else None
            values, refused = identifier_array(columns[internal], cells)
            self._read[internal] = (values, refused, cells)
        self._raw = columns

    def values(self, internal: str) -> pa.Array:
        """The identifiers of a column (null where empty or refused; all null when not read).

        :param internal: the column's internal name.
        """
        read = self._read.get(internal)
        return read[0] if read is not None else pa.nulls(self._n, pa.string())

    def chosen(self, preference: Sequence[str]) -> tuple[pa.Array, pa.Array, pa.Array]:
        """Each row's identifier kind (its position in :data:`IDENTIFIER_KINDS`), identifier, and problem.

        As :func:`~airflow_provider_aiq_braze.contracts.common.pick_identifier`: the first preferred
        kind with a value wins; a refused value met before it rejects the row. The audience and split
        columns are read first: a refused audience or split id rejects the row too.

        :param preference: identifier kinds in order of preference.
        """
        n = self._n
        kind = pa.nulls(n, pa.int8())
        chosen = pa.nulls(n, pa.string())
        problem = pa.nulls(n, pa.string())
        decided: Refused = False
        order = [c for c in ("c_aud", "c_split") if c in self._read] + [_ID_COLUMN_OF[k] for k in preference]
        for internal in order:
            if internal not in self._read:
                continue
            values, refused, cells = self._read[internal]
            if refused is not False:
                new = refused if decided is False else pc.and_(refused, pc.invert(decided))
                reasons = refusal_texts(self._raw[internal], cells, new, self._sources[internal])
                problem = pc.coalesce(problem, reasons)
                decided = new if decided is False else pc.or_(decided, new)
            if internal in ("c_aud", "c_split"):
                continue
            has = (
                pc.is_valid(values) if decided is False else pc.and_(pc.is_valid(values), pc.invert(decided))
            )
            position = IDENTIFIER_KINDS.index(next(k for k, c in _ID_COLUMN_OF.items() if c == internal))
            kind = pc.if_else(has, pa.scalar(position, pa.int8()), kind)
            chosen = pc.if_else(has, values, chosen)
            decided = has if decided is False else pc.or_(decided, has)
        return kind, chosen, problem


class _Normaliser:
    """Turn the caller's batches into compact, normalised batches for DuckDB (vectorised in Arrow).

    File names, audience ids, split ids and (audience, split) pairs become small integers (their
    texts are kept in :attr:`files`, :attr:`audiences`, :attr:`split_ids`, :attr:`pairs`); ids
    are trimmed and empty ones become nulls; the identifier is chosen by preference (``kind``
    is its position in :data:`IDENTIFIER_KINDS`) and the other one, if any, kept as ``alt_id``;
    ``member`` becomes a boolean (null when it does not parse, the text then kept).

    :param inp: the input description.
    :param spec: ``(internal name, source column, required)`` of the string columns to read.
    """

    def __init__(self, inp: DeltaInput, spec: list[tuple[str, str, bool]]) -> None:
        self.inp = inp
        self.spec = spec
        self.files: list[str] = []
        self.audiences: list[str] = []
        self.split_ids: list[str] = []
        self.pairs: list[tuple[int, int]] = []
        self._texts: dict[int, dict[str, int]] = {}
        self._pair_index: dict[tuple[int, int], int] = {}
        self.error: Exception | None = None
        fields = [
            pa.field("file_no", pa.int32()),
            pa.field("_row", pa.int64()),
            pa.field("aud_no", pa.int32()),
            pa.field("sid_no", pa.int32()),
            pa.field("pair_no", pa.int32()),
            pa.field("kind", pa.int8()),
            pa.field("identifier", pa.string()),
            pa.field("alt_id", pa.string()),
            pa.field("id_problem", pa.string()),
        ]
        internals = [internal for internal, _, _ in spec]
        if "c_member" in internals:
            fields += [pa.field("member", pa.bool_()), pa.field("raw_member", pa.string())]
        fields += [
            pa.field(internal[2:], pa.string()) for internal in internals if internal.startswith("c_v")
        ]
        self.schema = pa.schema(fields)

    def numbers(self, values: pa.Array, texts: list[str]) -> pa.Array:
        """Map strings to their positions in ``texts`` (appending new ones); nulls stay null.

        :param values: the strings.
        :param texts: the list of known texts (one of this object's lists).
        """
        index = self._texts.setdefault(id(texts), {})
        encoded = pc.dictionary_encode(values)
        numbers = []
        for text in encoded.dictionary.to_pylist():
            if text not in index:
                index[text] = len(texts)
                texts.append(text)
            numbers.append(index[text])
        return pc.take(pa.array(numbers, pa.int32()), encoded.indices)

    def pair(self, aud_no: int, sid_no: int) -> int:
        """The number of an (audience, split) pair, assigned on first sight.

        :param aud_no: the audience's number.
        :param sid_no: the split's number.
        """
        key = (aud_no, sid_no)
        if key not in self._pair_index:
            self._pair_index[key] = len(self.pairs)
            self.pairs.append(key)
        return self._pair_index[key]

    def _pairs(self, aud: pa.Array, sid: pa.Array) -> pa.Array:
        combo = pc.add(pc.multiply(pc.cast(aud, pa.int64()), 1 << 31), pc.cast(sid, pa.int64()))
        unique = pc.drop_null(pc.unique(combo))
        numbers = pa.array([self.pair(c >> 31, c & ((1 << 31) - 1)) for c in unique.to_pylist()], pa.int32())
        return pc.take(numbers, pc.index_in(combo, value_set=unique))

    def _constant(self, value: str, texts: list[str], n: int) -> pa.Array:
        number = self.numbers(pa.array([value], pa.string()), texts)[0].as_py()
        return pa.nulls(n, pa.int32()).fill_null(number)

    def batches(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """The normalised batches (an exception is also kept in :attr:`error`).

        :param batches: the caller's batches.
        """
        try:
            yield from self._batches(batches)
        except Exception as exc:
            self.error = exc
            raise

    def _batches(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        inp = self.inp
        null_str = pa.scalar(None, pa.string())
        for batch in batches:
            names = batch.schema.names
            if "_file" not in names or "_row" not in names:
                raise ValueError("input batches must carry '_file' and '_row' columns (the source rows)")
            n = batch.num_rows
            file_col = pc.cast(batch.column("_file"), pa.string())
            columns: dict[str, pa.Array] = {}
            for internal, source, required in self.spec:
                if source in names:
                    column = batch.column(source)
                    if internal in _ID_INTERNALS or column.type == pa.string():
                        columns[internal] = column  # ids keep their type: the identifier rule reads it
                    else:
                        columns[internal] = pc.cast(column, pa.string())
                elif required:
                    where = file_col[0].as_py() if n else "input"
                    raise ValueError(f"{where}: the input has no column {source!r}")
                else:
                    columns[internal] = pa.nulls(n, pa.string())
            ids = _Identifiers(batch, self.spec, columns)
            if inp.audience_id is not None:
                aud = self._constant(identifier_text(inp.audience_id, "audience_id") or "", self.audiences, n)
            else:
                aud = self.numbers(ids.values("c_aud"), self.audiences)
            if inp.split_id is not None:
                sid = self._constant(identifier_text(inp.split_id, "split_id") or "", self.split_ids, n)
            else:
                sid = self.numbers(ids.values("c_split"), self.split_ids)
            kind, identifier_col, problem = ids.chosen(inp.identifier_preference)
            ids_by_kind = {kind_name: ids.values(_ID_COLUMN_OF[kind_name]) for kind_name in IDENTIFIER_KINDS}
            # the identifier not chosen (kept only for the rejects' row values)
            alt = pc.if_else(
                pc.equal(kind, IDENTIFIER_KINDS.index("external_id")),
                ids_by_kind["braze_id"],
                pc.if_else(
                    pc.equal(kind, IDENTIFIER_KINDS.index("braze_id")), ids_by_kind["external_id"], null_str
                ),
            )
            arrays: list[pa.Array] = [
                self.numbers(file_col, self.files),
                pc.cast(batch.column("_row"), pa.int64()),
                aud,
                sid,
                self._pairs(aud, sid),
                kind,
                identifier_col,
                alt,
                problem,
            ]
            if "c_member" in columns:
                column = columns["c_member"]
                word = pc.utf8_lower(pc.utf8_trim(column, characters=" \t\n\r"))
                member = pc.if_else(
                    pc.is_in(word, pa.array(TRUE_WORDS)),
                    True,
                    pc.if_else(pc.is_in(word, pa.array(FALSE_WORDS)), False, pa.scalar(None, pa.bool_())),
                )
                arrays += [member, pc.if_else(pc.is_null(member), column, null_str)]
            arrays += [columns[internal] for internal, _, _ in self.spec if internal.startswith("c_v")]
            yield pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def reader(self, batches: Iterable[pa.RecordBatch]) -> pa.RecordBatchReader:
        """The normalised batches as an Arrow stream DuckDB can scan.

        :param batches: the caller's batches.
        """
        return pa.RecordBatchReader.from_batches(self.schema, self.batches(batches))

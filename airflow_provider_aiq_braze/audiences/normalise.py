"""Normalising the input: the caller's batches become compact, typed batches for DuckDB (in Arrow).

Kept as one class, :class:`_Normaliser`, while the package-wide identifier rule is being introduced
(its identifier handling is where that rule plugs in).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_aiq_braze.audiences.model import FALSE_WORDS, IDENTIFIER_KINDS, TRUE_WORDS, DeltaInput


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

    @staticmethod
    def _clean(values: pa.Array) -> pa.Array:
        """Trim whitespace; an empty value becomes null."""
        trimmed = pc.utf8_trim(values, characters=" \t\n\r")
        return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)

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
                    columns[internal] = column if column.type == pa.string() else pc.cast(column, pa.string())
                elif required:
                    where = file_col[0].as_py() if n else "input"
                    raise ValueError(f"{where}: the input has no column {source!r}")
                else:
                    columns[internal] = pa.nulls(n, pa.string())
            if inp.audience_id is not None:
                aud = self._constant(inp.audience_id.strip(), self.audiences, n)
            else:
                aud = self.numbers(self._clean(columns["c_aud"]), self.audiences)
            if inp.split_id is not None:
                sid = self._constant(inp.split_id.strip(), self.split_ids, n)
            else:
                sid = self.numbers(self._clean(columns["c_split"]), self.split_ids)
            ids = {
                "external_id": self._clean(columns["c_ext"])
                if "c_ext" in columns
                else pa.nulls(n, pa.string()),
                "braze_id": self._clean(columns["c_bid"]) if "c_bid" in columns else pa.nulls(n, pa.string()),
            }
            kind = pa.nulls(n, pa.int8())
            identifier = pa.nulls(n, pa.string())
            for preferred in reversed(inp.identifier_preference):
                has = pc.is_valid(ids[preferred])
                kind = pc.if_else(has, pa.scalar(IDENTIFIER_KINDS.index(preferred), pa.int8()), kind)
                identifier = pc.if_else(has, ids[preferred], identifier)
            # the identifier not chosen (kept only for the rejects' row values)
            alt = pc.if_else(
                pc.equal(kind, IDENTIFIER_KINDS.index("external_id")),
                ids["braze_id"],
                pc.if_else(pc.equal(kind, IDENTIFIER_KINDS.index("braze_id")), ids["external_id"], null_str),
            )
            arrays: list[pa.Array] = [
                self.numbers(file_col, self.files),
                pc.cast(batch.column("_row"), pa.int64()),
                aud,
                sid,
                self._pairs(aud, sid),
                kind,
                identifier,
                alt,
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

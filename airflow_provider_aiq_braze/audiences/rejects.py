"""Rejected rows: what makes a membership row a reject (checked in SQL as a reason code) and the
words of each reason (made only for the rows rejected, when they are read back)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb

from airflow_provider_aiq_braze.audiences.model import (
    FALSE_WORDS,
    IDENTIFIER_KINDS,
    TRUE_WORDS,
    DeltaInput,
    Reject,
    identifier_column,
)
from airflow_provider_aiq_braze.braze.limits import MAX_STRING_VALUE_LENGTH
from airflow_provider_aiq_braze.braze.rules import value_problem

# reason codes of row-level rejects (the text is made when the rejects are read)
_NO_AUDIENCE, _NO_SPLIT, _NO_IDENTIFIER, _NOT_AN_IDENTIFIER, _BAD_MEMBER, _BAD_VALUE = 1, 2, 3, 4, 5, 100


def row_checks(inp: DeltaInput, attr_internal: list[str]) -> str:
    """The SQL ``CASE`` giving each normalised row its reason code (``NULL``: the row is valid).

    :param inp: the input description.
    :param attr_internal: the internal names of the attribute columns (``v0``, ``v1``, …).
    """
    checks = [
        f"WHEN id_problem IS NOT NULL THEN {_NOT_AN_IDENTIFIER}",
        f"WHEN aud_no IS NULL THEN {_NO_AUDIENCE}",
        f"WHEN sid_no IS NULL THEN {_NO_SPLIT}",
        f"WHEN kind IS NULL THEN {_NO_IDENTIFIER}",
    ]
    if inp.input_kind == "changes":
        checks.append(f"WHEN member IS NULL THEN {_BAD_MEMBER}")
    for i, internal in enumerate(attr_internal):
        checks.append(f"WHEN length({internal}) > {MAX_STRING_VALUE_LENGTH} THEN {_BAD_VALUE + i}")
    return f"(CASE {' '.join(checks)} END)::SMALLINT"


def iter_rejects(
    con: duckdb.DuckDBPyConnection,
    inp: DeltaInput,
    spec: list[tuple[str, str, bool]],
    files: list[str],
    batch_rows: int,
) -> Iterator[Reject]:
    """Every rejected row with its reason, in input order (file, then row).

    ``row_dict`` holds the columns the delta reads, as normalised: ids trimmed, empty values as
    ``None``.

    :param con: the delta's connection (tables ``rows``, ``splits``, ``audiences``, ``split_ids``, ``dups``).
    :param inp: the input description.
    :param spec: ``(internal name, source column, required)`` of the columns read.
    :param files: the input files, by number.
    :param batch_rows: rows fetched per chunk.
    """
    ext, bid = IDENTIFIER_KINDS.index("external_id"), IDENTIFIER_KINDS.index("braze_id")
    exprs = {
        "c_aud": "a.text",
        "c_split": "i.text",
        "c_ext": f"CASE r.kind WHEN {ext} THEN r.identifier ELSE r.alt_id END",
        "c_bid": f"CASE r.kind WHEN {bid} THEN r.identifier ELSE r.alt_id END",
        "c_member": "coalesce(r.raw_member, r.member::VARCHAR)",
    }
    cols = [name for _, name, _ in spec]
    values_sql = "".join(
        f", {exprs.get(internal, 'r.' + internal[2:])} AS c{n}" for n, (internal, _, _) in enumerate(spec)
    )
    reader = con.sql(
        f"""
        SELECT r.file_no, r._row, r.reason, r.id_problem, s.problem AS split_problem,
               s.status AS split_status, a.text AS s_aud, i.text AS s_split, d.what, d.first_file,
               d.first_row{values_sql}
        FROM rows r
        LEFT JOIN splits s ON r.pair_no = s.split_no
        LEFT JOIN audiences a ON r.aud_no = a.no
        LEFT JOIN split_ids i ON r.sid_no = i.no
        LEFT JOIN (SELECT * FROM dups WHERE what = 'conflict') d
            ON r.file_no = d.file_no AND r._row = d._row
        WHERE r.reason IS NOT NULL OR s.status = 'rejected' OR d.what IS NOT NULL
        ORDER BY r.file_no, r._row
        """
    ).to_arrow_reader(batch_rows)
    for batch in reader:
        for rec in batch.to_pylist():
            row_dict = {name: rec[f"c{n}"] for n, name in enumerate(cols)}
            if rec["first_file"] is not None:
                rec["first_file"] = files[rec["first_file"]]
            yield Reject(files[rec["file_no"]], rec["_row"], _reason(rec, row_dict, inp), row_dict)


def _reason(rec: dict[str, Any], row_dict: dict[str, Any], inp: DeltaInput) -> str:
    """The text of a reject's reason (codes are turned into words only for rejected rows)."""
    code = rec["reason"]
    if code == _NO_AUDIENCE:
        return f"audience id column {inp.audience_col!r} is empty"
    if code == _NO_SPLIT:
        return f"split id column {inp.split_col!r} is empty"
    if code == _NO_IDENTIFIER:
        named = [repr(identifier_column(inp, kind)) for kind in inp.identifier_preference]
        if len(named) == 1:
            return f"no identifier: {named[0]} is empty"
        return f"no identifier: {' and '.join(named)} are all empty"
    if code == _NOT_AN_IDENTIFIER:
        return str(rec["id_problem"])
    if code == _BAD_MEMBER:
        return (
            f"{inp.member_col!r} value {row_dict.get(inp.member_col or '')!r} is not a boolean "
            f"({'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)})"
        )
    if code is not None and code >= _BAD_VALUE:
        name = inp.attribute_columns[code - _BAD_VALUE]
        value = row_dict.get(name)
        return value_problem(value, where=f"attribute {name!r}") or f"attribute {name!r} is invalid"
    if rec["split_status"] == "rejected":
        return str(rec["split_problem"])
    # the only other reject: a conflicting repeat (see iter_rejects's WHERE)
    return (
        f"conflicts with row {rec['first_row']} of {rec['first_file']}: same profile in audience "
        f"{rec['s_aud']!r} split {rec['s_split']!r} with different values (the first row is used)"
    )

"""The DuckDB statements of the delta, and small SQL helpers.

The tables a delta builds, in order (see :class:`~.delta.DeltaPlan`):

``rows``
    every input row, normalised (:mod:`.normalise`) with its reason code (:mod:`.rejects`);
    ``files``, ``audiences``, ``split_ids`` hold the texts behind the numbers.
``splits``, ``cur``, ``markers``, ``dirty``
    what happens to each split (:mod:`.plan`); the valid rows of the computed splits; the rows of
    the pending markers; the profiles of processed splits whose Braze value is unknown.
``old``
    the applied members of every computed or repaired split.
``dupkeys``, ``dups``, ``new``
    repeated profiles (duplicates and conflicts); the new members (or change rows) per split.
``delta``, ``writes``
    the profiles whose membership or attributes differ; one row per attribute write.

Profiles are joined on a 64-bit hash of the identifier, checked against the identifier itself so a
hash collision cannot merge two profiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from airflow_provider_aiq_braze.audiences.model import IDENTIFIER_KINDS, InputKind, Mode, SplitPlan

#: Joins new rows ``n`` with applied members ``o``: the hash drives the hash join; the residual check
#: on the string makes a hash collision harmless (the pair simply does not match).
JOIN_ON = "n.split_no = o.split_no AND n.h = o.h AND n.kind = o.kind AND NOT (n.identifier <> o.identifier)"


def kind_text(expr: str) -> str:
    """SQL turning a kind code into its name (``external_id``, ``braze_id``)."""
    return (
        "CASE "
        + expr
        + " "
        + " ".join(f"WHEN {i} THEN {literal(k)}" for i, k in enumerate(IDENTIFIER_KINDS))
        + " END"
    )


def kind_code(expr: str) -> str:
    """SQL turning a kind name into its code."""
    whens = " ".join(f"WHEN {literal(k)} THEN {i}" for i, k in enumerate(IDENTIFIER_KINDS))
    return f"(CASE {expr} {whens} END)::TINYINT"


def quote(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """Quote an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def one_row(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple[Any, ...]:
    """The one row a query returns (fetched to its end, so the connection is free for the next one)."""
    return tuple(con.execute(sql, params).fetchall()[0])


def text_table(con: duckdb.DuckDBPyConnection, table: str, texts: list[str]) -> None:
    """(Re)create ``table`` (``no``, ``text``) from the texts behind a numbered column."""
    arrow = pa.table({"no": pa.array(range(len(texts)), pa.int32()), "text": pa.array(texts, pa.string())})
    con.register(f"{table}_arrow", arrow)
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {table}_arrow")
    con.unregister(f"{table}_arrow")


@dataclass(frozen=True)
class DeltaSql:
    """The statements of one delta, for its input kind, attribute columns, mode and exit value.

    :param input_kind: ``snapshot`` or ``changes``.
    :param attribute_columns: the attribute columns (internally ``v0``, ``v1``, …).
    :param mode: ``delta`` or ``full``.
    :param exit_value: ``False``, or ``None`` to remove the attribute.
    """

    input_kind: InputKind
    attribute_columns: tuple[str, ...]
    mode: Mode
    exit_value: bool | None

    @property
    def attrs(self) -> list[str]:
        """The internal names of the attribute columns."""
        return [f"v{i}" for i in range(len(self.attribute_columns))]

    def duplicates(self) -> list[str]:
        """``dupkeys`` then ``dups``: rows repeating a profile already seen in the same split.

        An identical repeat is a ``duplicate`` (counted, not sent); one with other values a
        ``conflict`` (rejected); the first row (input order) wins. Only hash-equal candidates are
        compared, so the common case of no duplicates costs one aggregation.
        """
        values = ["member"] * (self.input_kind == "changes") + self.attrs
        same = " AND ".join(f"{v} IS NOT DISTINCT FROM first_value({v}) OVER w" for v in values) or "true"
        return [
            "CREATE TABLE dupkeys AS SELECT split_no, kind, h FROM cur GROUP BY ALL HAVING count(*) > 1",
            f"""
            CREATE TABLE dups AS
            SELECT file_no, _row, split_no, CASE WHEN same THEN 'duplicate' ELSE 'conflict' END AS what,
                   first_file, first_row
            FROM (
                SELECT c.file_no, c._row, c.split_no, {same} AS same,
                       first_value(c.file_no) OVER w AS first_file, first_value(c._row) OVER w AS first_row,
                       row_number() OVER w AS rn
                FROM cur c SEMI JOIN dupkeys d ON c.split_no = d.split_no AND c.kind = d.kind AND c.h = d.h
                WINDOW w AS (PARTITION BY c.split_no, c.kind, c.identifier ORDER BY c.file_no, c._row)
            ) WHERE rn > 1
            """,
        ]

    def new_rows(self, *, has_dups: bool, repaired: list[int]) -> str:
        """The ``new`` view: the valid rows of the computed splits but duplicates and conflicts;
        a repaired split's rows are its applied members (from no file: ``file_no`` is null)."""
        attrs = "".join(f", {a}" for a in self.attrs)
        changes = self.input_kind == "changes"
        member = "member" if changes else "NULL::BOOLEAN AS member"
        sql = f"SELECT split_no, kind, identifier, h, {member}{attrs}, file_no, _row FROM cur"
        if has_dups:
            sql += " c ANTI JOIN dups d USING (file_no, _row)"
        if repaired:
            member = "true AS member" if changes else "NULL::BOOLEAN AS member"
            sql += (
                f" UNION ALL SELECT split_no, kind, identifier, h, {member}{attrs}, NULL::INTEGER, "
                f"NULL::BIGINT FROM old WHERE split_no IN ({_numbers(repaired)})"
            )
        return f"CREATE VIEW new AS {sql}"

    def applied_state(self, splits: list[SplitPlan]) -> str:
        """The ``old`` table: the applied members of the splits (those with a local state file)."""
        parts = []
        for split in splits:
            attrs = "".join(
                f", {quote(name) if name in split.state_columns else 'NULL::VARCHAR'} AS {a}"
                for a, name in zip(self.attrs, self.attribute_columns, strict=True)
            )
            parts.append(
                f"SELECT {split.no}::INTEGER AS split_no, {kind_code('identifier_kind')} AS kind, "
                f"identifier, hash(identifier) AS h{attrs} "
                f"FROM read_parquet({literal(str(split.state_path))})"
            )
        if not parts:
            attrs = "".join(f", NULL::VARCHAR AS {a}" for a in self.attrs)
            parts.append(
                "SELECT NULL::INTEGER AS split_no, NULL::TINYINT AS kind, NULL::VARCHAR AS identifier, "
                f"NULL::UBIGINT AS h{attrs} WHERE false"
            )
        return f"CREATE TABLE old AS {' UNION ALL '.join(parts)}"

    def delta(self, *, has_dirty: bool) -> str:
        """The ``delta`` table: the profiles whose membership or attributes may need a write."""
        return (
            self._delta_snapshot(has_dirty)
            if self.input_kind == "snapshot"
            else self._delta_changes(has_dirty)
        )

    def _delta_snapshot(self, has_dirty: bool) -> str:
        """New members full-outer-joined with the applied ones (and the dirty profiles: always written)."""
        changed = [f"(n.{a} IS NOT NULL AND n.{a} IS DISTINCT FROM o.{a})" for a in self.attrs]
        attrs = "".join(f", n.{a} AS {a}, o.{a} AS old_{a}" for a in self.attrs)
        source = f"new n FULL OUTER JOIN old o ON {JOIN_ON}"
        split_no, kind = "coalesce(n.split_no, o.split_no)", "coalesce(n.kind, o.kind)"
        identifier, dirty = "coalesce(n.identifier, o.identifier)", "false"
        if has_dirty:
            source += (
                f" FULL OUTER JOIN dirty x ON x.split_no = {split_no} AND x.kind = {kind} "
                f"AND x.h = coalesce(n.h, o.h) AND x.identifier = {identifier}"
            )
            split_no, kind = (
                "coalesce(n.split_no, o.split_no, x.split_no)",
                "coalesce(n.kind, o.kind, x.kind)",
            )
            identifier, dirty = "coalesce(n.identifier, o.identifier, x.identifier)", "x.h IS NOT NULL"
        keep = ["n.h IS NULL", "o.h IS NULL", dirty, *changed]
        return f"""
            CREATE TABLE delta AS
            SELECT {split_no} AS split_no, {kind} AS kind, {identifier} AS identifier,
                   n.h IS NOT NULL AS in_new, o.h IS NOT NULL AS in_old, n.h IS NOT NULL AS member,
                   {dirty} AS dirty{attrs}
            FROM {source}
            {"" if self.mode == "full" else "WHERE " + " OR ".join(keep)}
        """

    def _delta_changes(self, has_dirty: bool) -> str:
        """Change rows left-joined with the applied members, plus the dirty profiles no change row
        names (written with their applied membership)."""
        changed = [f"(n.member AND n.{a} IS NOT NULL AND n.{a} IS DISTINCT FROM o.{a})" for a in self.attrs]
        attrs = "".join(f", n.{a} AS {a}, o.{a} AS old_{a}" for a in self.attrs)
        source, dirty = f"new n LEFT JOIN old o ON {JOIN_ON}", "false"
        if has_dirty:
            source += " LEFT JOIN dirty x ON x.split_no = n.split_no AND x.kind = n.kind AND x.h = n.h"
            source += " AND x.identifier = n.identifier"
            dirty = "x.h IS NOT NULL"
        keep = ["(n.member AND o.h IS NULL)", "(NOT n.member AND o.h IS NOT NULL)", dirty, *changed]
        sql = f"""
            SELECT n.split_no, n.kind, n.identifier, n.member AS in_new, o.h IS NOT NULL AS in_old,
                   n.member, {dirty} AS dirty{attrs}
            FROM {source}
            {"" if self.mode == "full" else "WHERE " + " OR ".join(keep)}
        """
        if has_dirty:
            old_attrs = "".join(f", o.{a} AS {a}, o.{a} AS old_{a}" for a in self.attrs)
            sql += f"""
            UNION ALL
            SELECT x.split_no, x.kind, x.identifier, o.h IS NOT NULL AS in_new, o.h IS NOT NULL AS in_old,
                   o.h IS NOT NULL AS member, true AS dirty{old_attrs}
            FROM dirty x
            LEFT JOIN old o ON x.split_no = o.split_no AND x.kind = o.kind AND x.h = o.h
                AND x.identifier = o.identifier
            ANTI JOIN new n ON x.split_no = n.split_no AND x.kind = n.kind AND x.h = n.h
                AND x.identifier = n.identifier
            """
        return f"CREATE TABLE delta AS {sql}"

    def writes(self, *, processed: int) -> str:
        """The ``writes`` table: one row per (profile, attribute) to write, with what it is
        (``enter``, ``exit``, ``resend`` in full mode, ``repair`` for a dirty profile, ``attribute``).

        :param processed: how many splits the plan writes for (computed or repaired).
        """
        exit_sql = "NULL::BOOLEAN" if self.exit_value is None else "false"
        # a dirty profile (named by a pending marker) is written whatever the applied state says;
        # mode="full" rewrites every membership of the splits it computes (not of repaired ones)
        full = "s.status = 'computed'" if self.mode == "full" else "false"
        if self.input_kind == "snapshot":
            enter = f"d.in_new AND (NOT d.in_old OR d.dirty OR {full})"
            leave = "NOT d.in_new AND (d.in_old OR d.dirty)"
        else:
            enter = f"d.member AND (NOT d.in_old OR d.dirty OR {full})"
            leave = f"NOT d.member AND (d.in_old OR d.dirty OR {full})"
        membership = f"""
            SELECT {kind_text("d.kind")} AS kind, d.identifier, s.attribute AS name, false AS is_str,
                   CASE WHEN {enter} THEN true ELSE {exit_sql} END AS b, NULL::VARCHAR AS s,
                   d.split_no,
                   CASE WHEN ({enter}) = d.in_old THEN CASE WHEN d.dirty THEN 'repair' ELSE 'resend' END
                        WHEN {enter} THEN 'enter' ELSE 'exit' END AS what
            FROM delta d JOIN splits s USING (split_no)
            WHERE ({enter}) OR ({leave})
        """
        parts = [
            f"SELECT {kind_text('d.kind')} AS kind, d.identifier, {literal(name)} AS name, true AS is_str, "
            f"NULL::BOOLEAN AS b, d.{a} AS s, d.split_no, 'attribute' AS what "
            f"FROM delta d JOIN splits s USING (split_no) WHERE d.member AND d.{a} IS NOT NULL "
            f"AND (d.{a} IS DISTINCT FROM d.old_{a} OR d.dirty OR {full})"
            for a, name in zip(self.attrs, self.attribute_columns, strict=True)
        ]
        if not parts:
            return f"CREATE TABLE writes AS {membership}"
        attributes = " UNION ALL ".join(parts)
        if processed > 1:  # a profile in several splits gets each attribute column once (lowest split wins)
            attributes = (
                f"SELECT * FROM ({attributes}) QUALIFY row_number() OVER "
                "(PARTITION BY kind, identifier, name ORDER BY split_no) = 1"
            )
        return f"CREATE TABLE writes AS {membership} UNION ALL {attributes}"

    def new_state(self, computed: list[int], *, repaired: bool) -> str:
        """The members of the new state of the computed splits (``split_no``, ``identifier_kind``,
        ``identifier`` and the attribute columns).

        :param computed: the computed splits' numbers.
        :param repaired: whether some split is repaired (its rows in ``new`` are not new state).
        """
        merged = "".join(
            f", coalesce(n.{a}, o.{a}) AS {quote(name)}"
            for a, name in zip(self.attrs, self.attribute_columns, strict=True)
        )
        if self.input_kind == "snapshot" and not merged:
            sql = f"SELECT split_no, {kind_text('kind')} AS identifier_kind, identifier FROM new"
        elif self.input_kind == "snapshot":
            # a missing value is not sent, so the state keeps the value Braze still holds
            sql = (
                f"SELECT n.split_no, {kind_text('n.kind')} AS identifier_kind, n.identifier{merged} "
                f"FROM new n LEFT JOIN old o ON {JOIN_ON}"
            )
        else:  # the applied members, plus those who entered, minus those who left
            sql = (
                "SELECT coalesce(n.split_no, o.split_no) AS split_no, "
                f"{kind_text('coalesce(n.kind, o.kind)')} AS identifier_kind, "
                f"coalesce(n.identifier, o.identifier) AS identifier{merged} "
                f"FROM new n FULL OUTER JOIN old o ON {JOIN_ON} WHERE n.h IS NULL OR n.member"
            )
        return f"SELECT * FROM ({sql}) WHERE split_no IN ({_numbers(computed)})" if repaired else sql

    def empty_state(self) -> str:
        """A query with the columns of a state file and no row (a computed split left empty)."""
        names = "".join(f", NULL::VARCHAR AS {quote(name)}" for name in self.attribute_columns)
        return f"SELECT NULL::VARCHAR AS identifier_kind, NULL::VARCHAR AS identifier{names} WHERE false"

    @staticmethod
    def updates() -> str:
        """Every write with the input rows behind its profile, in profile order (one update each)."""
        return f"""
            WITH profiles AS (SELECT DISTINCT kind, identifier FROM writes),
                 used AS (
                     SELECT {kind_text("n.kind")} AS kind, n.identifier, count(n.file_no) AS rows
                     FROM new n SEMI JOIN profiles p
                         ON {kind_text("n.kind")} = p.kind AND n.identifier = p.identifier
                     GROUP BY ALL
                 )
            SELECT w.kind, w.identifier, w.name, w.is_str, w.b, w.s, coalesce(u.rows, 0) AS rows
            FROM writes w LEFT JOIN used u ON w.kind = u.kind AND w.identifier = u.identifier
            ORDER BY w.kind, w.identifier, w.name
        """

    @staticmethod
    def restated_changes() -> str:
        """Per split, the change rows restating the applied membership (true for a member, false
        for a non-member)."""
        return (
            f"SELECT n.split_no, count(*) FROM new n LEFT JOIN old o ON {JOIN_ON} "
            "WHERE n.member = (o.h IS NOT NULL) GROUP BY 1"
        )


def _numbers(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers))

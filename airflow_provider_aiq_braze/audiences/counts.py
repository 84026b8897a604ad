"""What a delta does, counted per split and in total (the totals are the sums of the splits)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import duckdb

from airflow_provider_aiq_braze.audiences.model import SplitPlan
from airflow_provider_aiq_braze.audiences.sql import DeltaSql, one_row


@dataclass
class MembershipCounts:
    """The counts a split and the totals share.

    ``entered``, ``exited``, ``unchanged``, ``resent`` and ``repaired`` count memberships: one per
    (profile, split).

    :param rejected: rejected rows (row problems, invalid splits, conflicting duplicates).
    :param duplicates: rows repeating an earlier identical row (counted once).
    :param skipped_rows: valid rows of skipped splits.
    :param entered: profiles set to ``true`` because they joined.
    :param exited: profiles set to the exit value because they left.
    :param unchanged: members already applied (snapshot input) or change rows restating the
        applied membership (changes input); no membership change for them.
    :param resent: membership writes repeating the applied value (``mode="full"`` only).
    :param repaired: membership writes restoring profiles an interrupted run may have changed
        (named by a pending marker) that no other write covers.
    :param members: members in the new state of the computed splits.
    :param attribute_updates: attribute-column writes.
    :param data_points: attribute writes (what Braze bills): membership and attribute columns.
    :param full_resync_data_points: what re-sending every member of the computed splits would cost
        (one membership write per member plus its attribute values), for comparison.
    """

    rejected: int = 0
    duplicates: int = 0
    skipped_rows: int = 0
    entered: int = 0
    exited: int = 0
    unchanged: int = 0
    resent: int = 0
    repaired: int = 0
    members: int = 0
    attribute_updates: int = 0
    data_points: int = 0
    full_resync_data_points: int = 0

    def add(self, other: MembershipCounts) -> None:
        """Add another's counts to these.

        :param other: the counts to add.
        """
        for name in (f.name for f in fields(MembershipCounts)):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(kw_only=True)
class SplitCounts(MembershipCounts):
    """What the plan does for one split.

    :param audience_id: the audience id.
    :param split_id: the split id.
    :param attribute: the membership attribute (may be invalid when ``status`` is ``rejected``).
    :param status: ``computed``, ``skipped`` or ``rejected``.
    :param rows: input rows that named this split (rejected ones included).
    :param reason: why the split is skipped or rejected.
    """

    audience_id: str
    split_id: str
    attribute: str
    status: str = "computed"
    rows: int = 0
    reason: str | None = None


@dataclass
class DeltaCounts(MembershipCounts):
    """Totals over the input and every split.

    ``rows_read == rejected + duplicates + skipped_rows + rows used`` where the rows used are
    the members (snapshot input) or the change rows (changes input) of the computed splits.

    :param rows_read: input rows.
    :param profiles: profiles with at least one write (attribute objects to send).
    :param splits: the counts of every split, keyed ``"<audience_id>/<split_id>"``.
    """

    rows_read: int = 0
    profiles: int = 0
    splits: dict[str, SplitCounts] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The counts as plain JSON-able values (for XCom and logs)."""
        return asdict(self)


def count_delta(
    con: duckdb.DuckDBPyConnection,
    sql: DeltaSql,
    splits: list[SplitPlan],
    members: dict[tuple[str, str], int],
) -> DeltaCounts:
    """Count a built delta from its tables (``rows``, ``dups``, ``writes``).

    :param con: the delta's connection.
    :param sql: its statements.
    :param splits: its splits.
    :param members: the members of each computed split's new state.
    """
    rows_read, rejected = one_row(con, "SELECT count(*), count(reason) FROM rows")
    # rows rejected before they had a split (no audience or split id) are in no split's counts
    counts = DeltaCounts(
        rows_read=int(rows_read), rejected=int(rejected) - sum(s.row_rejects for s in splits)
    )
    dups = _by_split(con, "SELECT split_no, what, count(*) FROM dups GROUP BY ALL")
    writes = _by_split(con, "SELECT split_no, what, count(*) FROM writes GROUP BY ALL")
    restated = dict(con.execute(sql.restated_changes()).fetchall()) if sql.input_kind == "changes" else {}
    for split in splits:
        one = SplitCounts(
            audience_id=split.audience_id,
            split_id=split.split_id,
            attribute=split.attribute,
            status=split.status,
            rows=split.rows,
            reason=split.problem,
            rejected=split.rows if split.status == "rejected" else split.row_rejects,
            repaired=writes.get((split.no, "repair"), 0),
            attribute_updates=writes.get((split.no, "attribute"), 0),
        )
        if split.status == "skipped":
            one.skipped_rows = split.rows - split.row_rejects
        elif split.status == "computed":
            one.duplicates = dups.get((split.no, "duplicate"), 0)
            one.rejected += dups.get((split.no, "conflict"), 0)
            one.entered = writes.get((split.no, "enter"), 0)
            one.exited = writes.get((split.no, "exit"), 0)
            one.resent = writes.get((split.no, "resend"), 0)
            one.members = members.get(split.key, 0)
            # snapshot input: the members that were already applied
            one.unchanged = (
                one.members - one.entered if sql.input_kind == "snapshot" else restated.get(split.no, 0)
            )
            one.full_resync_data_points = one.members * (1 + len(sql.attribute_columns))
        one.data_points = one.entered + one.exited + one.resent + one.repaired + one.attribute_updates
        counts.add(one)
        counts.splits[f"{split.audience_id}/{split.split_id}"] = one
    counts.profiles = int(one_row(con, "SELECT count(DISTINCT (kind, identifier)) FROM writes")[0])
    return counts


def _by_split(con: duckdb.DuckDBPyConnection, sql: str) -> dict[tuple[int, str], int]:
    return {(no, what): int(n) for no, what, n in con.execute(sql).fetchall()}

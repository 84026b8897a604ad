"""BrazeAudienceMembershipOperator against the sandbox over HTTP: deltas, state, guarantees."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.exceptions import AirflowException

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef]

from airflow_provider_aiq_braze.audiences import DeltaPlan, SnapshotStore
from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from tests.braze_sandbox import create_users
from tests.operators.conftest import assert_invariant, read_jsonl, write_csv

USERS = [f"u{i:03d}" for i in range(200)]


def snapshot(
    path: Path, members: list[tuple[str, str, str]], extra: dict[str, list[str]] | None = None
) -> Path:
    """Write a membership CSV of (audience, split, external_id) rows."""
    header = ["audience_id", "split_id", "external_id", "braze_id", *(extra or {})]
    rows = (
        [audience, split, user, "", *(values[i] for values in (extra or {}).values())]
        for i, (audience, split, user) in enumerate(members)
    )
    return write_csv(path, header, rows)


def _op(tmp_path: Path, source: Path, key: str, **kwargs: object) -> BrazeAudienceMembershipOperator:
    return BrazeAudienceMembershipOperator(
        task_id="audience", source=str(source), state_path=str(tmp_path / "state"), snapshot_key=key, **kwargs
    )


def _flags(sandbox, attribute: str) -> dict[str, object]:
    return {
        p["external_id"]: p["attributes"][attribute]
        for p in sandbox.state.profiles()
        if attribute in p["attributes"]
    }


@pytest.fixture
def users(sandbox):
    create_users(sandbox, USERS)
    return sandbox


def test_three_snapshots_send_only_entries_and_exits(tmp_path, users, run_task) -> None:
    sandbox = users
    days = {
        "2026-11-01": USERS[0:100],
        "2026-11-02": USERS[10:110],  # 10 exit, 10 enter
        "2026-11-03": USERS[10:105] + USERS[150:160],  # 5 exit, 10 enter
    }
    spent = []
    for day, members in days.items():
        source = snapshot(tmp_path / day / "members.csv", [("A1", "S1", u) for u in members])
        before = sandbox.state.data_points
        result = run_task(_op(tmp_path, source, day), run_id=f"scheduled__{day}")
        spent.append(sandbox.state.data_points - before)
        assert_invariant(result)
        assert result["state_committed"] is True
    assert spent == [100, 20, 15]
    assert result["entered"] == 10 and result["exited"] == 5 and result["unchanged"] == 95
    assert result["data_points"] == 15
    flags = _flags(sandbox, "AIQ_A1_S1")
    assert {u for u, v in flags.items() if v is True} == set(days["2026-11-03"])
    assert {u for u, v in flags.items() if v is False} == set(USERS[0:10]) | set(USERS[105:110])


def test_exit_value_none_removes_the_attribute(tmp_path, users, run_task) -> None:
    sandbox = users
    run_task(
        _op(tmp_path, snapshot(tmp_path / "d1.csv", [("A1", "S1", u) for u in USERS[:20]]), "2026-11-01")
    )
    run_task(
        _op(
            tmp_path,
            snapshot(tmp_path / "d2.csv", [("A1", "S1", u) for u in USERS[5:20]]),
            "2026-11-02",
            exit_value=None,
        )
    )
    assert "AIQ_A1_S1" not in sandbox.state.profile("u000")["attributes"]
    assert sandbox.state.profile("u005")["attributes"]["AIQ_A1_S1"] is True


def test_several_audiences_and_splits_in_one_file_one_object_per_user(tmp_path, users, run_task) -> None:
    sandbox = users
    members = [("A1", "S1", u) for u in USERS[:50]] + [("A1", "S2", u) for u in USERS[25:75]]
    members += [("A2", "S1", u) for u in USERS[:10]]
    result = run_task(_op(tmp_path, snapshot(tmp_path / "m.csv", members), "2026-11-01"))
    assert result["entered"] == 110 and result["data_points"] == 110
    # u000..u074 have updates; u000 carries three attributes in one object
    assert result["objects_sent"] == 75
    assert set(result["splits"]) == {"A1/S1", "A1/S2", "A2/S1"}
    attributes = sandbox.state.profile("u000")["attributes"]
    assert (attributes["AIQ_A1_S1"], attributes["AIQ_A2_S1"]) == (True, True)
    assert sandbox.state.profile("u030")["attributes"]["AIQ_A1_S2"] is True
    assert_invariant(result)


def test_changes_input(tmp_path, users, run_task) -> None:
    sandbox = users
    first = tmp_path / "c1.csv"
    first.write_text("external_id,member\n" + "".join(f"{u},true\n" for u in USERS[:10]))
    run_task(_op(tmp_path, first, "2026-11-01", audience_id="77", split_id="3", input_kind="changes"))
    second = tmp_path / "c2.csv"
    second.write_text("external_id,member\nu000,false\nu001,false\nu050,true\nu002,true\nu199,false\n")
    result = run_task(
        _op(tmp_path, second, "2026-11-02", audience_id="77", split_id="3", input_kind="changes")
    )
    assert (result["entered"], result["exited"]) == (1, 2)
    flags = _flags(sandbox, "AIQ_77_3")
    assert flags["u000"] is False and flags["u050"] is True and flags["u002"] is True
    assert "u199" not in flags  # leaving a split one never joined writes nothing
    assert_invariant(result)


def test_attribute_columns_follow_the_delta_rule(tmp_path, users, run_task) -> None:
    sandbox = users
    members = [("A1", "S1", u) for u in USERS[:3]]
    day1 = snapshot(tmp_path / "d1.csv", members, {"tier": ["gold", "silver", "gold"]})
    run_task(_op(tmp_path, day1, "2026-11-01", attribute_columns=["tier"]))
    before = sandbox.state.data_points
    day2 = snapshot(tmp_path / "d2.csv", members, {"tier": ["gold", "gold", "gold"]})
    result = run_task(_op(tmp_path, day2, "2026-11-02", attribute_columns=["tier"]))
    assert sandbox.state.data_points - before == 1  # only u001's tier changed
    assert sandbox.state.profile("u001")["attributes"]["tier"] == "gold"
    assert result["data_points"] == 1


def test_crash_between_delivery_and_commit_converges(tmp_path, users, run_task, mocker) -> None:
    sandbox = users
    run_task(
        _op(tmp_path, snapshot(tmp_path / "d1.csv", [("A1", "S1", u) for u in USERS[:100]]), "2026-11-01")
    )
    day2 = snapshot(tmp_path / "d2.csv", [("A1", "S1", u) for u in USERS[50:150]])
    commit = mocker.patch.object(DeltaPlan, "commit", side_effect=RuntimeError("worker lost"))
    with pytest.raises(RuntimeError, match="worker lost"):
        run_task(_op(tmp_path, day2, "2026-11-02"), run_id="scheduled__2026-11-02")
    assert commit.called
    mocker.stopall()
    # Braze got the delta, the state did not move: the retry recomputes the same delta and the
    # ledger recognises every batch as delivered
    retry = run_task(_op(tmp_path, day2, "2026-11-02"), run_id="scheduled__2026-11-02", try_number=2)
    assert retry["state_committed"] is True
    assert retry["sent"] == 0 and retry["skipped_reasons"].get("already delivered", 0) > 0
    flags = _flags(sandbox, "AIQ_A1_S1")
    assert {u for u, v in flags.items() if v} == set(USERS[50:150])
    day3 = snapshot(tmp_path / "d3.csv", [("A1", "S1", u) for u in USERS[50:150]])
    assert run_task(_op(tmp_path, day3, "2026-11-03"))["data_points"] == 0
    assert_invariant(retry)


def test_older_snapshot_is_skipped_unless_forced(tmp_path, users, run_task) -> None:
    sandbox = users
    run_task(
        _op(tmp_path, snapshot(tmp_path / "d3.csv", [("A1", "S1", u) for u in USERS[:10]]), "2026-11-03")
    )
    older = snapshot(tmp_path / "d2.csv", [("A1", "S1", u) for u in USERS[5:15]])
    before = sandbox.state.data_points
    result = run_task(_op(tmp_path, older, "2026-11-02"))
    assert sandbox.state.data_points == before
    assert result["sent"] == 0 and result["skipped"] == 10
    (skipped,) = result["skipped_splits"]
    assert "older" in skipped["reason"] and "2026-11-03" in skipped["reason"]
    forced = run_task(_op(tmp_path, older, "2026-11-02", force=True), run_id="manual__force")
    assert forced["entered"] == 5 and forced["exited"] == 5
    assert_invariant(result)


def test_update_existing_only_leaves_unknown_users_uncreated(tmp_path, users, run_task) -> None:
    sandbox = users
    members = [("A1", "S1", "u000"), ("A1", "S1", "stranger")]
    result = run_task(_op(tmp_path, snapshot(tmp_path / "m.csv", members), "2026-11-01"))
    assert result["sent"] == 2
    assert sandbox.state.profile("stranger") is None
    assert sandbox.state.profile("u000")["attributes"]["AIQ_A1_S1"] is True
    created = run_task(
        _op(
            tmp_path,
            snapshot(tmp_path / "n.csv", [("A9", "S1", "newbie")]),
            "2026-11-01",
            update_existing_only=False,
        )
    )
    assert created["sent"] == 1 and sandbox.state.profile("newbie") is not None


def test_rejects_duplicates_and_invalid_template(tmp_path, users, run_task) -> None:
    members = [("A1", "S1", "u000"), ("A1", "S1", "u000"), ("A1", "S1", ""), ("A1", "S1", "u001")]
    result = run_task(
        _op(tmp_path, snapshot(tmp_path / "m.csv", members), "2026-11-01", max_reject_ratio=1.0)
    )
    assert (result["sent"], result["rejected"], result["skipped"]) == (2, 1, 1)
    assert result["skipped_reasons"] == {"duplicate row": 1}
    (reject,) = read_jsonl(result["rejects_path"])
    assert reject["row"] == 3 and "identifier" in reject["reason"]
    bad = run_task(
        _op(
            tmp_path,
            snapshot(tmp_path / "b.csv", [("A1", "S1", "u000")]),
            "2026-11-01",
            attribute_template="$AIQ_{audience_id}",
            max_reject_ratio=1.0,
        )
    )
    assert bad["rejected"] == 1 and "'$'" in read_jsonl(bad["rejects_path"])[0]["reason"]
    assert_invariant(bad)


def test_dry_run_commits_nothing(tmp_path, users, run_task) -> None:
    sandbox = users
    source = snapshot(tmp_path / "m.csv", [("A1", "S1", u) for u in USERS[:80]])
    dry = run_task(_op(tmp_path, source, "2026-11-01", dry_run=True))
    assert (
        dry["state_committed"] is False and dry["requests"] == 2 and sandbox.state.data_points == len(USERS)
    )
    real = run_task(_op(tmp_path, source, "2026-11-01"))
    assert real["sent"] == 80 and real["state_committed"] is True


def test_missing_snapshot_key_is_a_clear_error(tmp_path, users, run_task) -> None:
    source = snapshot(tmp_path / "m.csv", [("A1", "S1", "u000")])
    op = BrazeAudienceMembershipOperator(
        task_id="audience", source=str(source), state_path=str(tmp_path / "s")
    )
    with pytest.raises(AirflowException, match="snapshot_key"):
        run_task(op)


def test_a_snapshot_key_that_is_not_a_date_fails_before_anything_is_sent(tmp_path, users, run_task) -> None:
    sandbox = users
    before = sandbox.state.data_points
    source = snapshot(tmp_path / "m.csv", [("A1", "S1", "u000")])
    with pytest.raises(AirflowFailException) as info:
        run_task(_op(tmp_path, source, "None"))  # e.g. "{{ params.day }}" with the param unset
    message = str(info.value)
    assert "snapshot key 'None' (from the snapshot_key argument) is not a date or date-time" in message
    assert "2026-11-03T03:00:00Z" in message and "Nothing was sent" in message
    assert sandbox.state.data_points == before
    assert not (tmp_path / "state" / "audiences").exists()  # not even a lease was taken


def test_a_split_applied_under_a_key_that_is_not_a_date_fails_the_run_with_the_fix(
    tmp_path, users, run_task
) -> None:
    sandbox = users
    day1 = snapshot(tmp_path / "d1.csv", [("A1", "S1", u) for u in USERS[:5]])
    legacy_store = SnapshotStore(str(tmp_path / "state" / "audiences"), "braze_default")
    run_task(_op(tmp_path, day1, "2026-11-01"))
    # what an earlier version left after a run with an unset template parameter
    manifest = legacy_store.split_dir("A1", "S1") / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"2026-11-01"', b'"None"'))
    members = [("A1", "S1", u) for u in USERS[:6]] + [("A2", "S1", "u100")]
    day2 = snapshot(tmp_path / "d2.csv", members)
    with pytest.raises(AirflowFailException) as info:
        run_task(_op(tmp_path, day2, "2026-11-02"), run_id="scheduled__2026-11-02")
    assert "audience 'A1' split 'S1': the applied snapshot key 'None' is not a date" in str(info.value)
    assert "run once with force=True" in str(info.value)
    assert sandbox.state.profile("u100")["attributes"]["AIQ_A2_S1"] is True  # the other split went through
    assert "AIQ_A1_S1" not in sandbox.state.profile("u005")["attributes"]
    forced = run_task(_op(tmp_path, day2, "2026-11-02", force=True), run_id="manual__fix")
    assert forced["entered"] == 1 and sandbox.state.profile("u005")["attributes"]["AIQ_A1_S1"] is True
    assert legacy_store.applied_key("A1", "S1") == "2026-11-02"


def test_result_relates_rows_sent_to_profiles(tmp_path, users, run_task) -> None:
    first = [("A1", "S1", u) for u in USERS[:10]] + [("A2", "S1", u) for u in USERS[:10]]
    run_task(_op(tmp_path, snapshot(tmp_path / "d1.csv", first), "2026-11-01"))
    # u000-u004 leave A1; u010-u012 join A1 and A2 (two rows each); the rest stay
    second = [("A1", "S1", u) for u in USERS[5:13]] + [("A2", "S1", u) for u in USERS[:13]]
    result = run_task(_op(tmp_path, snapshot(tmp_path / "d2.csv", second), "2026-11-02"))
    assert (result["entered"], result["exited"], result["repaired"]) == (6, 5, 0)
    assert result["profiles_updated"] == result["objects_sent"] == 8
    # the rows behind the 8 updates: 2 rows for each of the 3 joining profiles, and one row (their
    # A2 membership) for each of the 5 profiles that left A1 and have no A1 row any more
    assert result["sent"] == 3 * 2 + 5
    assert result["data_points"] == 11
    assert_invariant(result)


def test_a_run_waits_for_the_run_holding_the_namespace(tmp_path, users, run_task) -> None:
    from airflow_provider_aiq_braze.delivery.ownership import LeaseSettings, LedgerLease, OwnerId

    sandbox = users
    store = SnapshotStore(str(tmp_path / "state" / "audiences"), "braze_default")
    holder = LedgerLease(
        store.lease_path, owner=OwnerId.current(label="a backfill"), settings=LeaseSettings(ttl=30)
    )
    holder.acquire()
    try:
        source = snapshot(tmp_path / "m.csv", [("A1", "S1", "u000")])
        with pytest.raises(AirflowException) as info:
            run_task(_op(tmp_path, source, "2026-11-01", state_lease_wait=1))
    finally:
        holder.release()
    message = str(info.value)
    assert "Another run owns the audience state of namespace 'braze_default'" in message
    assert "a backfill" in message and "nothing was sent" in message
    assert "AIQ_A1_S1" not in sandbox.state.profile("u000")["attributes"]
    assert run_task(_op(tmp_path, source, "2026-11-01", state_lease_wait=1))["sent"] == 1


@pytest.mark.parametrize(
    ("argument", "value"), [("state_lease_wait", -1), ("state_lease_ttl", 0), ("state_lease_ttl", "60")]
)
def test_lease_arguments_are_checked(tmp_path, argument, value) -> None:
    with pytest.raises(ValueError, match=f"{argument} must be a number of seconds"):
        _op(tmp_path, tmp_path / "m.csv", "2026-11-01", **{argument: value})


def test_a_retry_after_another_run_repaired_its_profiles_sends_again(
    tmp_path, users, run_task, mocker
) -> None:
    sandbox = users
    day1 = snapshot(tmp_path / "d1.csv", [("A1", "S1", u) for u in USERS[:10]])
    run_task(_op(tmp_path, day1, "2026-11-01"))
    # the nightly of 11-03 delivers everything, then dies before its commit
    day3 = snapshot(tmp_path / "d3.csv", [("A1", "S1", u) for u in USERS[10:20]])
    mocker.patch.object(DeltaPlan, "commit", side_effect=RuntimeError("worker lost"))
    with pytest.raises(RuntimeError, match="worker lost"):
        run_task(_op(tmp_path, day3, "2026-11-03"), run_id="scheduled__2026-11-03")
    mocker.stopall()
    # a backfill of 11-02 (the same members as 11-01) undoes what the dead run wrote
    day2 = snapshot(tmp_path / "d2.csv", [("A1", "S1", u) for u in USERS[:10]])
    backfill = run_task(_op(tmp_path, day2, "2026-11-02"), run_id="backfill__2026-11-02")
    assert backfill["repaired"] == 20 and backfill["entered"] == backfill["exited"] == 0
    assert {u for u, v in _flags(sandbox, "AIQ_A1_S1").items() if v} == set(USERS[:10])
    # the nightly's retry computes the same writes as its first try, which its ledger recorded as
    # accepted; the backfill wrote since, so they are sent again
    retry = run_task(_op(tmp_path, day3, "2026-11-03"), run_id="scheduled__2026-11-03", try_number=2)
    assert retry["sent"] == 10 and retry["data_points"] == 20
    assert {u for u, v in _flags(sandbox, "AIQ_A1_S1").items() if v} == set(USERS[10:20])
    assert_invariant(retry)

"""The operators under ``airflow dags test``: a real task runner, XCom, logs and templates."""

from __future__ import annotations

from tests.braze_sandbox import connection_env, create_users
from tests.conftest import TEST_API_KEY
from tests.operators.conftest import write_csv
from tests.operators.test_events import HEADER, _rows


def test_event_export_under_dags_test(airflow_home, braze_sandbox, tmp_path) -> None:
    staging, state = tmp_path / "staging", tmp_path / "state"
    rows = [*_rows(120), ["", "u-bad", "", "2026-11-28T10:00:00Z", "x"]]
    write_csv(staging / "events" / "2026-11-28" / "part-0.csv", HEADER, rows)
    env = {
        **connection_env(braze_sandbox),
        "AIQ_TEST_STAGING": str(staging),
        "AIQ_TEST_STATE": str(state),
    }
    done = airflow_home.dags_test("test_events_export", "2026-11-28", **env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert len(braze_sandbox.state.events()) == 120
    (result,) = airflow_home.xcom("test_events_export", "events")
    assert (result["rows_read"], result["sent"], result["rejected"]) == (121, 120, 1)
    assert "Invariant holds: rows_read 121 == sent 120 + rejected 1 + skipped 0 + uncertain 0" in output
    assert braze_sandbox.api_key == TEST_API_KEY
    assert TEST_API_KEY not in output
    assert airflow_home.files_containing(TEST_API_KEY) == []
    assert [p for p in state.rglob("*") if p.is_file() and TEST_API_KEY.encode() in p.read_bytes()] == []


def test_audience_refresh_under_dags_test(airflow_home, braze_sandbox, tmp_path) -> None:
    from tests.operators.test_audience import snapshot

    users = [f"m{i}" for i in range(30)]
    create_users(braze_sandbox, users)
    staging, state = tmp_path / "staging", tmp_path / "state"
    snapshot(staging / "audiences" / "2026-11-01" / "a.csv", [("A1", "S1", u) for u in users[:20]])
    snapshot(staging / "audiences" / "2026-11-02" / "a.csv", [("A1", "S1", u) for u in users[5:25]])
    env = {
        **connection_env(braze_sandbox),
        "AIQ_TEST_STAGING": str(staging),
        "AIQ_TEST_STATE": str(state),
    }
    for day in ("2026-11-01", "2026-11-02"):
        done = airflow_home.dags_test("test_audience_refresh", day, **env)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    first, second = airflow_home.xcom("test_audience_refresh", "audience")
    assert (first["entered"], second["entered"], second["exited"]) == (20, 5, 5)
    assert second["data_points"] == 10 and second["state_committed"] is True
    flags = {p["external_id"]: p["attributes"].get("AIQ_A1_S1") for p in braze_sandbox.state.profiles()}
    assert {u for u, v in flags.items() if v is True} == set(users[5:25])
    assert {u for u, v in flags.items() if v is False} == set(users[:5])
    assert airflow_home.files_containing(TEST_API_KEY) == []


def test_campaign_trigger_under_dags_test(airflow_home, braze_sandbox, tmp_path) -> None:
    users = [f"c{i}" for i in range(60)]
    create_users(braze_sandbox, users)
    staging, state = tmp_path / "staging", tmp_path / "state"
    write_csv(
        staging / "campaigns" / "2026-11-03" / "r.csv", ["external_id", "offer"], [[u, "10%"] for u in users]
    )
    env = {
        **connection_env(braze_sandbox),
        "AIQ_TEST_STAGING": str(staging),
        "AIQ_TEST_STATE": str(state),
    }
    done = airflow_home.dags_test("test_campaign_trigger", "2026-11-03", **env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    (result,) = airflow_home.xcom("test_campaign_trigger", "campaign")
    assert result["sent"] == 60 and result["requests"] == 2
    dispatches = braze_sandbox.state.dispatches()
    assert {d["campaign_id"] for d in dispatches} == {"winback-20261103"}
    message = dispatches[0]["messages"][0]
    assert message["trigger_properties"] == {"sent_for": "2026-11-03", "offer": "10%"}
    assert sorted(result["campaigns"]["winback-20261103"]["dispatch_ids"]) == sorted(
        d["dispatch_id"] for d in dispatches
    )

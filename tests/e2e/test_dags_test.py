"""The operators under ``airflow dags test``: a real task runner, XCom, logs and templates."""

from __future__ import annotations

import json

from tests.conftest import TEST_API_KEY
from tests.operators.test_events import _rows, write_csv


def _conn(sandbox) -> str:
    return json.dumps({"conn_type": "braze", "host": sandbox.base_url, "password": sandbox.api_key})


def test_event_export_under_dags_test(airflow_home, braze_sandbox, tmp_path) -> None:
    staging, state = tmp_path / "staging", tmp_path / "state"
    rows = [*_rows(120), ["", "u-bad", "", "2026-11-28T10:00:00Z", "x"]]
    write_csv(staging / "events" / "2026-11-28" / "part-0.csv", rows)
    env = {
        "AIRFLOW_CONN_BRAZE_DEFAULT": _conn(braze_sandbox),
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

"""The example DAGs load on this Airflow, with the expected tasks, schedules and lineage.

Also the lineage the operators declare (``operators/base.py``): the staged source as an inlet and
the Braze target as an outlet whose Asset event carries the run's counts.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.sdk import Asset

try:
    from airflow.sdk.exceptions import ParamValidationError
except ImportError:  # Airflow 3.1
    from airflow.exceptions import ParamValidationError  # type: ignore[no-redef,attr-defined]

from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from airflow_provider_aiq_braze.operators.base import default_braze_asset, source_assets
from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from tests.operators.conftest import point_default_connection_at, write_csv
from tests.operators.test_events import HEADER, _rows

try:  # Airflow 3.2+
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 3.1
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

try:
    from airflow.sdk.execution_time.context import OutletEventAccessors
except ImportError:  # pragma: no cover - moved in a later Airflow
    OutletEventAccessors = None  # type: ignore[assignment,misc]

DAGS = Path(__file__).resolve().parent.parent / "dags"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every DAG file of ``dags/``, parsed as the dag-processor would."""
    staging = tmp_path_factory.mktemp("staging")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIQ_STAGING_PATH", str(staging))
        patch.setenv("AIQ_STATE_PATH", str(staging / "state"))
        kwargs = (
            {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
        )
        return DagBag(dag_folder=str(DAGS), **kwargs)


def _cron(timetable: Any) -> tuple[str, str]:
    """(class name, cron expression) of a timetable, core (3.1) or SDK (3.2+)."""
    expression = getattr(timetable, "expression", None) or getattr(timetable, "_expression", None)
    return type(timetable).__name__, str(expression)


def test_every_dag_file_imports(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert sorted(dagbag.dag_ids) == [
        "aiq_braze_after_audience_sync",
        "aiq_braze_audience_refresh",
        "aiq_braze_campaign_trigger",
        "aiq_braze_event_export",
        "aiq_braze_large_event_export",
        "aiq_journey_winback_staging",
    ]


def test_audience_refresh_has_a_daily_data_interval(dagbag: Any) -> None:
    dag = dagbag.dags["aiq_braze_audience_refresh"]
    assert _cron(dag.timetable) == ("CronDataIntervalTimetable", "0 3 * * *")
    assert set(dag.task_dict) == {"wait_for_snapshot", "sync_membership"}
    sync = dag.task_dict["sync_membership"]
    assert isinstance(sync, BrazeAudienceMembershipOperator)
    assert sync.upstream_task_ids == {"wait_for_snapshot"}
    # the day the run owns picks the snapshot and keys it: scheduled, manual and backfill runs agree
    assert "{{ run_day(params, dag_run) }}" in sync.source
    assert sync.snapshot_key == "{{ run_day(params, dag_run) }}"
    assert default_braze_asset("audience") in sync.outlets


# -- scheduled, backfill and manual runs own the same day, and never collide or block -------------

DAILY = ("aiq_braze_audience_refresh", "aiq_braze_large_event_export")


def _render(dag: Any, template: str, params: dict[str, Any], interval_start: Any) -> str:
    """A template as a run renders it, with the DAG's own Jinja environment and macros."""
    run = SimpleNamespace(data_interval_start=interval_start)
    return str(dag.get_template_env().from_string(template).render(params=params, dag_run=run))


def _folder(dag: Any) -> str:
    """The templated staging folder a daily or hourly example DAG reads."""
    if "list_part_files" in dag.task_dict:
        return str(dag.task_dict["list_part_files"].op_args[0])
    return str(next(t.source for t in dag.tasks if hasattr(t, "source")))


@pytest.mark.parametrize("dag_id", DAILY)
def test_daily_dags_leave_room_for_a_manual_run_beside_a_waiting_sensor(dagbag: Any, dag_id: str) -> None:
    """Unpausing (catchup=False) creates a run whose reschedule sensor may wait for hours: with
    max_active_runs=1 a manual run would sit queued behind it."""
    dag = dagbag.dags[dag_id]
    (sensor,) = [t for t in dag.tasks if getattr(t, "mode", None) == "reschedule"]
    assert sensor.timeout > 3600
    assert dag.max_active_runs >= 2
    assert dag.catchup is False


@pytest.mark.parametrize("dag_id", DAILY)
def test_a_scheduled_or_backfill_run_owns_its_interval_day(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    start = pendulum.datetime(2025, 6, 2, 4, tz="UTC")  # an interval starting on day D owns day D
    assert _render(dag, _folder(dag), {"day": None}, start).rstrip("/").endswith("/2025-06-02")


def test_a_manual_run_owns_its_day_param_whatever_its_logical_date(dagbag: Any) -> None:
    dag = dagbag.dags["aiq_braze_audience_refresh"]
    sync = dag.task_dict["sync_membership"]
    for interval_start in (None, pendulum.datetime(2025, 6, 9, 3, tz="UTC")):
        day = {"day": "2025-06-02"}
        assert _render(dag, sync.source, day, interval_start).endswith("/audiences/2025-06-02/")
        assert _render(dag, sync.snapshot_key, day, interval_start) == "2025-06-02"


def test_a_manual_run_without_a_logical_date_must_name_its_day(dagbag: Any) -> None:
    dag = dagbag.dags["aiq_braze_audience_refresh"]
    with pytest.raises(
        ValueError, match=r"no data interval .* no 'day' param: trigger it with the param day"
    ):
        _render(dag, _folder(dag), {"day": None}, None)
    with pytest.raises(ValueError, match=r"The param day='June 2nd' is not a day in ISO 8601 form"):
        _render(dag, _folder(dag), {"day": "June 2nd"}, None)
    # the trigger form and the REST API check the param's format before the run exists
    day = copy.deepcopy(dag.params.get_param("day"))
    assert day.resolve("2025-06-02") == "2025-06-02"
    assert day.resolve(None) is None  # scheduled and backfill runs
    with pytest.raises(ParamValidationError):
        day.resolve("02/06/2025")


def test_the_hourly_export_owns_its_interval_hour_or_its_hour_param(dagbag: Any) -> None:
    dag = dagbag.dags["aiq_braze_event_export"]
    start = pendulum.datetime(2025, 6, 3, 10, tz="UTC")
    assert _render(dag, _folder(dag), {"hour": None}, start).endswith("/events/2025-06-03/10/")
    assert _render(dag, _folder(dag), {"hour": "2025-06-03T07"}, None).endswith("/events/2025-06-03/07/")
    with pytest.raises(ValueError, match="'hour' param"):
        _render(dag, _folder(dag), {"hour": None}, None)


def test_event_export_is_hourly(dagbag: Any) -> None:
    dag = dagbag.dags["aiq_braze_event_export"]
    assert _cron(dag.timetable) == ("CronDataIntervalTimetable", "0 * * * *")
    send = dag.task_dict["send_events"]
    assert isinstance(send, BrazeEventExportOperator)
    assert send.upstream_task_ids == {"wait_for_events"}
    assert "{{ run_hour(params, dag_run) }}" in send.source  # the interval hour, or a manual run's param


def test_campaign_trigger_is_scheduled_on_the_staged_segment(dagbag: Any) -> None:
    producer = dagbag.dags["aiq_journey_winback_staging"]
    (announce,) = producer.tasks
    (segment,) = announce.outlets
    dag = dagbag.dags["aiq_braze_campaign_trigger"]
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    assert segment.name in repr(dag.timetable.asset_condition)
    trigger = dag.task_dict["trigger_campaign"]
    assert isinstance(trigger, BrazeCampaignTriggerOperator)
    assert trigger.inlets == [segment]
    assert trigger.upstream_task_ids == {"segment_path"}


def test_large_export_maps_over_part_files_in_a_pool(dagbag: Any) -> None:
    dag = dagbag.dags["aiq_braze_large_event_export"]
    assert "day" in dag.params
    assert _cron(dag.timetable) == ("CronDataIntervalTimetable", "0 4 * * *")
    send = dag.task_dict["send_part"]
    assert type(send).__name__ == "MappedOperator"
    assert send.pool == "braze_users_track"
    assert send.upstream_task_ids == {"list_part_files"}
    assert default_braze_asset("events") in send.outlets


def test_after_sync_dag_is_scheduled_on_the_audience_asset(dagbag: Any) -> None:
    dag = dagbag.dags["aiq_braze_after_audience_sync"]
    assert "braze://braze_default/audience" in repr(dag.timetable.asset_condition)


# -- lineage (operators/base.py) -------------------------------------------------------------


def test_plain_sources_become_inlets_templated_ones_do_not() -> None:
    assert source_assets("/data/aiq/audiences/") == [
        Asset(name="file:///data/aiq/audiences/", uri="file:///data/aiq/audiences/")
    ]
    assert [a.uri for a in source_assets(["s3://b/x/*.parquet", "/d/y.csv"])] == [
        "s3://b/x/*.parquet",
        "file:///d/y.csv",
    ]
    assert source_assets("/data/{{ ds }}/") == []
    assert source_assets("relative/path.csv") == []
    op = BrazeEventExportOperator(task_id="t", source="/data/{{ ds }}/", inlets=[Asset("mine")])
    assert op.inlets == [Asset("mine")]


def test_outlet_defaults_and_overrides() -> None:
    op = BrazeEventExportOperator(task_id="t", source="/x.csv", braze_conn_id="braze_eu")
    assert op.outlets == [Asset(name="braze_events_braze_eu", uri="braze://braze_eu/events")]
    own = Asset(name="crm_events", uri="braze://eu/crm-events")
    op = BrazeEventExportOperator(task_id="t", source="/x.csv", braze_asset=own, outlets=[own])
    assert op.outlets == [own]


@pytest.mark.skipif(OutletEventAccessors is None, reason="OutletEventAccessors moved")
def test_asset_event_extra_carries_the_counts(tmp_path: Path, braze_sandbox: Any, monkeypatch: Any) -> None:

    point_default_connection_at(braze_sandbox, monkeypatch)
    write_csv(tmp_path / "in" / "part-0.csv", HEADER, _rows(10))
    op = BrazeEventExportOperator(
        task_id="t", source=str(tmp_path / "in"), state_path=str(tmp_path / "state")
    )
    ti = SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=-1, try_number=1)
    events = OutletEventAccessors()
    result = op.execute({"ti": ti, "outlet_events": events})  # type: ignore[arg-type]
    extra = events[op.braze_asset].extra
    assert extra["rows_read"] == result["rows_read"] == 10
    assert extra["sent"] == 10 and extra["dry_run"] is False
    assert "skipped_reasons" not in extra  # only scalars

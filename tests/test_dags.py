"""The example DAGs load on this Airflow, with the expected tasks, schedules and lineage.

Also the lineage the operators declare (``operators/base.py``): the staged source as an inlet and
the Braze target as an outlet whose Asset event carries the run's counts.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Asset

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
    assert dag.max_active_runs == 1
    assert set(dag.task_dict) == {"wait_for_snapshot", "sync_membership"}
    sync = dag.task_dict["sync_membership"]
    assert isinstance(sync, BrazeAudienceMembershipOperator)
    assert sync.upstream_task_ids == {"wait_for_snapshot"}
    # the interval, not the run's logical date, picks the snapshot: scheduled, manual and backfill runs agree
    assert "{{ data_interval_start | ds }}" in sync.source
    assert sync.snapshot_key is None  # default: the run's data_interval_end
    assert default_braze_asset("audience") in sync.outlets


def test_event_export_is_hourly(dagbag: Any) -> None:
    dag = dagbag.dags["aiq_braze_event_export"]
    assert _cron(dag.timetable) == ("CronDataIntervalTimetable", "0 * * * *")
    send = dag.task_dict["send_events"]
    assert isinstance(send, BrazeEventExportOperator)
    assert send.upstream_task_ids == {"wait_for_events"}
    assert "data_interval_start" in send.source


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

"""Nightly audience refresh: ActionIQ's daily membership snapshot → ``AIQ_*`` attributes in Braze.

Each run owns one day D: a scheduled or backfill run its data interval, from D 03:00 UTC to D+1
03:00 UTC; a manual run the ``day`` param (trigger it **without a logical date**, with
``{"day": "2025-06-02"}``, so it never takes the logical date of a scheduled or backfill run). It
waits for ActionIQ's staged snapshot of that day, ``$AIQ_STAGING_PATH/audiences/<YYYY-MM-DD>/``
(part files with the columns ``audience_id, split_id, external_id, braze_id`` and a ``_SUCCESS``
marker written last), then sends Braze only what changed since the snapshot applied before it.

Safe to backfill from the UI (*Trigger > Backfill*): each day applies its own snapshot, keyed by the
day, and a day older than the applied state is skipped instead of overwriting newer membership; a
day already applied (by a manual run, say) sends nothing again. Run backfills with *Max active
runs* = 1 so days apply in order. ``max_active_runs=2``: a scheduled run waiting for a late snapshot
(its sensor pokes every 5 minutes for up to 6 hours) leaves room for a manual run.

A second DAG, ``aiq_braze_after_audience_sync``, is scheduled on the Asset the sync updates and
shows the counts each completed sync publishes in its Asset event.

Environment (same files locally, in docker-compose and in production):

- ``AIQ_STAGING_PATH``: root of ActionIQ's staged output (a local path or ``s3://…``, ``gs://…``).
- ``AIQ_STAGING_CONN_ID``: the connection for remote staging storage (default: none).
- ``AIQ_STATE_PATH``: ledgers and the applied audience state (default
  ``$AIRFLOW_HOME/aiq_braze_state``; shared storage on Celery or Kubernetes).
- ``AIQ_BRAZE_CONN_ID``: the Braze connection (default ``braze_default``).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, ObjectStoragePath, get_current_context, task

try:  # Airflow 3.2+
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.1
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment,no-redef]

from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from airflow_provider_aiq_braze.operators.base import default_braze_asset
from airflow_provider_aiq_braze.scheduling import DAY_PARAM, MACROS

STAGING = os.environ.get("AIQ_STAGING_PATH", os.path.join(os.environ.get("AIRFLOW_HOME", "."), "staging"))
STAGING_CONN_ID = os.environ.get("AIQ_STAGING_CONN_ID") or None
STATE = os.environ.get("AIQ_STATE_PATH") or None
BRAZE_CONN_ID = os.environ.get("AIQ_BRAZE_CONN_ID", "braze_default")

#: The day a run owns: the ``day`` param of a manual run, else the start of the run's data interval.
DAY = "{{ run_day(params, dag_run) }}"
#: The day's snapshot folder.
SNAPSHOT = STAGING.rstrip("/") + "/audiences/" + DAY


@task.sensor(poke_interval=300, timeout=6 * 3600, mode="reschedule")
def wait_for_snapshot(marker: str) -> bool:
    """Done when ActionIQ wrote the snapshot's ``_SUCCESS`` marker (any ObjectStoragePath storage).

    :param marker: the marker's path (templated).
    """
    return bool(ObjectStoragePath(marker.removeprefix("file://"), conn_id=STAGING_CONN_ID).exists())


with DAG(
    dag_id="aiq_braze_audience_refresh",
    description="ActionIQ audience snapshot of the day -> Braze AIQ_* attributes (deltas only)",
    schedule=CronDataIntervalTimetable("0 3 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    params={"day": DAY_PARAM},
    user_defined_macros=MACROS,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["actioniq", "braze", "audiences"],
    doc_md=__doc__,
):
    snapshot_ready = wait_for_snapshot(SNAPSHOT + "/_SUCCESS")
    sync_membership = BrazeAudienceMembershipOperator(
        task_id="sync_membership",
        source=SNAPSHOT + "/",
        source_conn_id=STAGING_CONN_ID,
        braze_conn_id=BRAZE_CONN_ID,
        state_path=STATE,
        # the day orders snapshots: an older day never overwrites a newer one, the same day is applied once
        snapshot_key=DAY,
    )
    snapshot_ready >> sync_membership


with DAG(
    dag_id="aiq_braze_after_audience_sync",
    description="Runs after each completed audience sync (scheduled on its Braze Asset)",
    schedule=[default_braze_asset("audience", BRAZE_CONN_ID)],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["actioniq", "braze", "lineage"],
):

    @task
    def report_sync() -> list[dict[str, object]]:
        """Log the counts each triggering sync put in its Asset event's ``extra``."""
        reports = []
        for events in get_current_context()["triggering_asset_events"].values():
            for event in events:
                reports.append(dict(event.extra))
                print(f"Audience sync {event.source_dag_id}/{event.source_run_id}: {event.extra}")
        return reports

    report_sync()

"""Event export: ActionIQ events staged per hour → Braze ``/users/track`` events.

Each run owns one hour (a scheduled or backfill run its data interval ``[HH:00, HH+1:00)``, a manual
run the ``hour`` param, e.g. ``{"hour": "2025-06-03T10"}``, triggered without a logical date),
waits for that hour's staged
folder ``$AIQ_STAGING_PATH/events/<YYYY-MM-DD>/<HH>/`` (part files with ``event_name``,
``external_id`` / ``braze_id``, ``timestamp`` and property columns, ``_SUCCESS`` last) and sends
every event once: the ledger makes retries, re-runs and backfills of an hour skip what Braze
already accepted.

Near real time: shorten the interval (``CronDataIntervalTimetable("*/5 * * * *")`` with 5-minute
folders), or schedule on an Asset the staging task updates for each file it lands — see
``docs/scheduling.md``. Environment: as in ``aiq_braze_audience_refresh.py``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, ObjectStoragePath, task

try:  # Airflow 3.2+
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.1
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment,no-redef]

from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from airflow_provider_aiq_braze.scheduling import HOUR_PARAM, MACROS

STAGING = os.environ.get("AIQ_STAGING_PATH", os.path.join(os.environ.get("AIRFLOW_HOME", "."), "staging"))
STAGING_CONN_ID = os.environ.get("AIQ_STAGING_CONN_ID") or None
STATE = os.environ.get("AIQ_STATE_PATH") or None
BRAZE_CONN_ID = os.environ.get("AIQ_BRAZE_CONN_ID", "braze_default")

#: The hour's folder: the ``hour`` param of a manual run, else the run's data interval's start.
HOUR = STAGING.rstrip("/") + "/events/{{ run_hour(params, dag_run) }}"


@task.sensor(poke_interval=60, timeout=3 * 3600, mode="reschedule")
def wait_for_events(marker: str) -> bool:
    """Done when the hour's ``_SUCCESS`` marker exists.

    :param marker: the marker's path (templated).
    """
    return bool(ObjectStoragePath(marker.removeprefix("file://"), conn_id=STAGING_CONN_ID).exists())


with DAG(
    dag_id="aiq_braze_event_export",
    description="ActionIQ events of the hour -> Braze /users/track events (at most once per batch)",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    params={"hour": HOUR_PARAM},
    user_defined_macros=MACROS,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=2)},
    tags=["actioniq", "braze", "events"],
    doc_md=__doc__,
):
    events_ready = wait_for_events(HOUR + "/_SUCCESS")
    send_events = BrazeEventExportOperator(
        task_id="send_events",
        source=HOUR + "/",
        source_conn_id=STAGING_CONN_ID,
        braze_conn_id=BRAZE_CONN_ID,
        state_path=STATE,
    )
    events_ready >> send_events

"""Large exports: one mapped task per part file, a pool capping concurrent senders.

ActionIQ writes a large daily export as many part files
(``$AIQ_STAGING_PATH/events_bulk/<YYYY-MM-DD>/part-00000.csv.gz`` …, ``_SUCCESS`` last). A small
task lists them; ``BrazeEventExportOperator.partial(...).expand(source=...)`` maps one task
instance per part, each with its own ledger, so a failed part retries alone and Celery or
Kubernetes workers share the parts.

Braze's ``/users/track`` budget (3,000 requests / 3 s by default) is per *workspace*: every task
sending to it draws from the same budget. The pool ``$AIQ_BRAZE_POOL`` (default
``braze_users_track``) caps how many parts send at once; create it before the first run::

    airflow pools set braze_users_track 4 "Concurrent senders to the Braze workspace"

(``make demo`` creates it; ``docs/scaling.md`` explains how to size it.) Mapped tasks get no
default outlet at parse time, so the Braze Asset is passed in ``outlets`` explicitly.

Each run owns one day: a scheduled or backfill run its data interval's day, a manual run the
``day`` param (trigger it without a logical date, with ``{"day": "2025-06-02"}``).
``max_active_runs=2``: a scheduled run waiting for a late export leaves room for a manual run.
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

from airflow_provider_aiq_braze.operators.base import default_braze_asset
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from airflow_provider_aiq_braze.scheduling import DAY_PARAM, MACROS
from airflow_provider_aiq_braze.staging import locate

STAGING = os.environ.get("AIQ_STAGING_PATH", os.path.join(os.environ.get("AIRFLOW_HOME", "."), "staging"))
STAGING_CONN_ID = os.environ.get("AIQ_STAGING_CONN_ID") or None
STATE = os.environ.get("AIQ_STATE_PATH") or None
BRAZE_CONN_ID = os.environ.get("AIQ_BRAZE_CONN_ID", "braze_default")
POOL = os.environ.get("AIQ_BRAZE_POOL", "braze_users_track")

#: The day's export folder: the ``day`` param of a manual run, else the run's data interval's day.
EXPORT = STAGING.rstrip("/") + "/events_bulk/{{ run_day(params, dag_run) }}"


@task.sensor(poke_interval=300, timeout=6 * 3600, mode="reschedule")
def wait_for_export(marker: str) -> bool:
    """Done when the export's ``_SUCCESS`` marker exists.

    :param marker: the marker's path (templated).
    """
    return bool(ObjectStoragePath(marker.removeprefix("file://"), conn_id=STAGING_CONN_ID).exists())


@task
def list_part_files(folder: str) -> list[str]:
    """The export's part files, in a stable order (markers and hidden files left out).

    :param folder: the export folder (templated).
    """
    return [file.uri for file in locate(folder, conn_id=STAGING_CONN_ID)]


with DAG(
    dag_id="aiq_braze_large_event_export",
    description="A large daily event export, one mapped task per part file, capped by a pool",
    schedule=CronDataIntervalTimetable("0 4 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    params={"day": DAY_PARAM},
    user_defined_macros=MACROS,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=2)},
    tags=["actioniq", "braze", "events", "mapping"],
    doc_md=__doc__,
):
    parts = list_part_files(EXPORT + "/")
    wait_for_export(EXPORT + "/_SUCCESS") >> parts
    BrazeEventExportOperator.partial(
        task_id="send_part",
        pool=POOL,
        source_conn_id=STAGING_CONN_ID,
        braze_conn_id=BRAZE_CONN_ID,
        state_path=STATE,
        max_workers=8,
        outlets=[default_braze_asset("events", BRAZE_CONN_ID)],
    ).expand(source=parts)

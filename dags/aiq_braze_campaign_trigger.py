"""Campaign trigger: a journey's staged segment → an API-triggered Braze campaign, at most once.

Two DAGs show both sides of the Asset that links them:

- ``aiq_journey_winback_staging`` stands for the journey's staging step: once ActionIQ has written
  the segment of a journey step to ``$AIQ_STAGING_PATH/campaigns/winback/<batch>/``, it updates
  the Asset ``aiq_winback_segment`` with the folder in the event's ``extra`` (``{"path": ...}``).
- ``aiq_braze_campaign_trigger`` is scheduled on that Asset: each new segment triggers the campaign
  ``$AIQ_WINBACK_CAMPAIGN_ID`` for its recipients (columns ``external_id`` / ``braze_id`` and
  trigger properties). The ledger keeps a retry or re-run from messaging anyone twice.

Run by hand (``airflow dags test`` or *Trigger* with conf), pass the folder as
``{"segment_path": "..."}``. Environment: as in ``aiq_braze_audience_refresh.py``, plus
``AIQ_WINBACK_CAMPAIGN_ID``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, Param, get_current_context, task

from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.staging import locate

STAGING = os.environ.get("AIQ_STAGING_PATH", os.path.join(os.environ.get("AIRFLOW_HOME", "."), "staging"))
STAGING_CONN_ID = os.environ.get("AIQ_STAGING_CONN_ID") or None
STATE = os.environ.get("AIQ_STATE_PATH") or None
BRAZE_CONN_ID = os.environ.get("AIQ_BRAZE_CONN_ID", "braze_default")
CAMPAIGN_ID = os.environ.get("AIQ_WINBACK_CAMPAIGN_ID", "aiq-winback-demo")
SEGMENTS = STAGING.rstrip("/") + "/campaigns/winback"

#: Updated by the journey's staging step each time a new segment is ready.
WINBACK_SEGMENT = Asset(name="aiq_winback_segment", uri="aiq://journeys/winback/segment")


with DAG(
    dag_id="aiq_journey_winback_staging",
    description="Stands for the journey's staging step: announces a staged segment through an Asset",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={"batch": Param("latest", type="string", description="the folder under campaigns/winback/")},
    tags=["actioniq", "journeys"],
):

    @task(outlets=[WINBACK_SEGMENT])
    def announce_segment(folder: str) -> str:
        """Check the segment is staged, then update the Asset with its folder.

        :param folder: the segment folder (templated).
        """
        files = locate(folder, conn_id=STAGING_CONN_ID)  # raises when nothing is staged
        get_current_context()["outlet_events"][WINBACK_SEGMENT].extra = {"path": folder, "files": len(files)}
        return folder

    announce_segment(SEGMENTS + "/{{ params.batch }}/")


with DAG(
    dag_id="aiq_braze_campaign_trigger",
    description="Each staged winback segment -> Braze API-triggered campaign (at most once)",
    schedule=[WINBACK_SEGMENT],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={"segment_path": Param("", type="string", description="segment folder, for manual runs")},
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["actioniq", "braze", "campaigns"],
    doc_md=__doc__,
):

    @task
    def segment_path() -> str:
        """The staged segment: from the triggering Asset event, else the ``segment_path`` param."""
        context = get_current_context()
        paths = [
            str(event.extra["path"])
            for events in context["triggering_asset_events"].values()
            for event in events
            if event.extra.get("path")
        ]
        path = paths[-1] if paths else str(context["params"].get("segment_path") or "")
        if not path:
            raise ValueError("No segment: no triggering Asset event with a path and no 'segment_path' param")
        return path

    trigger = BrazeCampaignTriggerOperator(
        task_id="trigger_campaign",
        source="{{ ti.xcom_pull(task_ids='segment_path') }}",
        source_conn_id=STAGING_CONN_ID,
        campaign_id=CAMPAIGN_ID,
        trigger_properties={"journey": "winback"},
        braze_conn_id=BRAZE_CONN_ID,
        state_path=STATE,
        inlets=[WINBACK_SEGMENT],  # the source is templated: name the staged input ourselves
    )
    segment_path() >> trigger

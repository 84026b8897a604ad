"""DAGs the end-to-end tests run with ``airflow dags test``; paths come from the environment."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator

STAGING = os.environ.get("AIQ_TEST_STAGING", "/tmp/aiq-test-staging")
STATE = os.environ.get("AIQ_TEST_STATE", "/tmp/aiq-test-state")

with DAG(
    dag_id="test_events_export",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
):
    BrazeEventExportOperator(
        task_id="events",
        source=STAGING + "/events/{{ ds }}/*.csv",
        state_path=STATE,
        max_reject_ratio=0.5,
    )


with DAG(
    dag_id="test_audience_refresh",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
):
    BrazeAudienceMembershipOperator(
        task_id="audience",
        source=STAGING + "/audiences/{{ ds }}/*.csv",
        state_path=STATE,
        snapshot_key="{{ ds }}",
    )


with DAG(
    dag_id="test_campaign_trigger",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
):
    BrazeCampaignTriggerOperator(
        task_id="campaign",
        source=STAGING + "/campaigns/{{ ds }}/*.csv",
        state_path=STATE,
        campaign_id="winback-{{ ds_nodash }}",
        trigger_properties={"sent_for": "{{ ds }}"},
    )

"""Provider metadata, registered through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_aiq_braze import __version__
from airflow_provider_aiq_braze.connection_form import CONN_FIELDS, CONN_TYPE, HOOK_NAME, UI_FIELD_BEHAVIOUR


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata for Airflow's providers manager."""
    return {
        "package-name": "airflow-provider-aiq-braze",
        "name": "ActionIQ to Braze",
        "description": "Deliver ActionIQ audiences, events and campaign triggers to Braze.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Braze",
                "external-doc-url": "https://www.braze.com/docs/api/basics",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": "Braze", "python-modules": ["airflow_provider_aiq_braze.hooks.braze"]}
        ],
        "operators": [
            {
                "integration-name": "Braze",
                "python-modules": [
                    "airflow_provider_aiq_braze.operators.events",
                    "airflow_provider_aiq_braze.operators.audience",
                    "airflow_provider_aiq_braze.operators.campaigns",
                ],
            }
        ],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "airflow_provider_aiq_braze.hooks.braze.BrazeHook",
                "hook-name": HOOK_NAME,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
    }

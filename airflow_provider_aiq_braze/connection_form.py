"""The Braze connection form, declared once.

Airflow 3.2+ reads it from :func:`get_provider_info` (``conn-fields`` and ``ui-field-behaviour``);
Airflow 3.1 calls the hook's ``get_ui_field_behaviour`` / ``get_connection_form_widgets``, which
are derived from the same dictionaries so the two can never disagree.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_aiq_braze.braze.instances import INSTANCE_CODES

CONN_TYPE = "braze"
HOOK_NAME = "Braze"
DEFAULT_CONN_ID = "braze_default"

#: ``ui-field-behaviour`` in provider-info form (kebab-case keys).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "login", "port"],
    "relabeling": {"host": "REST endpoint", "password": "REST API key"},
    "placeholders": {
        "host": "https://rest.iad-01.braze.com (Settings > APIs and Identifiers)",
        "password": "REST API key with users.track (and campaigns.trigger.send for campaigns)",
        "extra": '{"instance": "US-01", "timeout": 30}',
        "instance": "US-01",
    },
}

#: ``conn-fields`` in provider-info form: custom fields stored in the connection extra.
CONN_FIELDS: dict[str, Any] = {
    "instance": {
        "label": "Braze instance",
        "description": (
            "Optional. Your Braze instance (shown in the dashboard URL), used when REST endpoint is "
            "empty. One of: " + ", ".join(INSTANCE_CODES) + "."
        ),
        "schema": {"type": ["string", "null"], "enum": [*INSTANCE_CODES, None]},
    },
    "allow_custom_host": {
        "label": "Allow a custom host",
        "description": "Accept a REST endpoint that is not a Braze host, e.g. a corporate proxy.",
        "schema": {"type": ["boolean", "null"]},
    },
}


def python_ui_field_behaviour() -> dict[str, Any]:
    """The same behaviour in the shape the hook's ``get_ui_field_behaviour`` returns."""
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }

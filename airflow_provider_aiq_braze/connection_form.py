"""The Braze connection form, declared once.

Airflow 3.2+ reads it from :func:`get_provider_info` (``conn-fields`` and ``ui-field-behaviour``);
Airflow 3.1 calls the hook's ``get_ui_field_behaviour`` / ``get_connection_form_widgets``, which
return :func:`python_ui_field_behaviour` and :func:`connection_form_widgets`: derived from the same
dictionaries, so the two can never disagree.
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


def connection_form_widgets() -> dict[str, Any]:
    """The custom fields as the WTForms widgets Airflow 3.1's connection form shows.

    Airflow 3.2+ reads ``conn-fields`` from the provider info and never calls this; the Flask and
    WTForms imports happen only when Airflow 3.1's web server does.
    """
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, IntegerField, StringField
    from wtforms.validators import Optional, any_of

    widgets: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        schema = spec.get("schema", {})
        types = schema.get("type", "string")
        types = [types] if isinstance(types, str) else list(types)
        validators: list[Any] = [Optional()]
        if "enum" in schema:
            validators.append(any_of(list(schema["enum"])))
        label = lazy_gettext(spec.get("label", name))
        description = spec.get("description", "")
        if "boolean" in types:
            widgets[name] = BooleanField(label, description=description)
        elif "integer" in types:
            widgets[name] = IntegerField(
                label, validators=validators, widget=BS3TextFieldWidget(), description=description
            )
        else:
            widgets[name] = StringField(
                label, validators=validators, widget=BS3TextFieldWidget(), description=description
            )
    return widgets

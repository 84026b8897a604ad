"""Provider metadata: its shape, Airflow's schema, the hook's form methods, and real Airflow CLIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest

from airflow_provider_aiq_braze.braze.instances import INSTANCE_CODES
from airflow_provider_aiq_braze.get_provider_info import get_provider_info
from airflow_provider_aiq_braze.hooks.braze import BrazeHook

EXPECTED_CODES = [
    "US-01", "US-02", "US-03", "US-04", "US-05", "US-06", "US-07", "US-08", "US-10",
    "EU-01", "EU-02", "AU-01", "ID-01", "JP-01", "KR-01",
]  # fmt: skip


def _braze_connection_type() -> dict[str, Any]:
    [entry] = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "braze"]
    return entry


def test_provider_info_identity() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-aiq-braze"
    assert info["hooks"] == [
        {"integration-name": "Braze", "python-modules": ["airflow_provider_aiq_braze.hooks.braze"]}
    ]
    entry = _braze_connection_type()
    assert entry["hook-class-name"] == "airflow_provider_aiq_braze.hooks.braze.BrazeHook"
    assert entry["hook-name"] == "Braze"


def test_connection_type_declares_form() -> None:
    entry = _braze_connection_type()
    behaviour = entry["ui-field-behaviour"]
    assert behaviour["hidden-fields"] == ["schema", "login", "port"]
    assert behaviour["relabeling"] == {"host": "REST endpoint", "password": "REST API key"}
    fields = entry["conn-fields"]
    assert set(fields) == {"instance", "allow_custom_host"}
    assert [c for c in fields["instance"]["schema"]["enum"] if c is not None] == EXPECTED_CODES
    assert list(INSTANCE_CODES) == EXPECTED_CODES
    assert fields["allow_custom_host"]["schema"]["type"] == ["boolean", "null"]


def test_provider_info_matches_airflow_schema() -> None:
    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_hook_ui_field_behaviour_agrees_with_metadata() -> None:
    behaviour = _braze_connection_type()["ui-field-behaviour"]
    assert BrazeHook.get_ui_field_behaviour() == {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }


class _Field:
    """Records how a wtforms field was built."""

    def __init__(
        self,
        label: str | None = None,
        validators: list[Any] | None = None,
        description: str = "",
        default: Any = None,
        widget: Any = None,
    ) -> None:
        self.label = label
        self.validators = validators or []
        self.description = description
        self.widget = widget


@pytest.fixture
def fake_fab(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, type]]:
    """Stand-ins for wtforms / flask_babel / flask_appbuilder (not installed with Airflow 3 core)."""
    classes = {
        name: type(name, (_Field,), {})
        for name in ("StringField", "IntegerField", "BooleanField", "PasswordField")
    }
    wtforms = types.ModuleType("wtforms")
    for name, cls in classes.items():
        setattr(wtforms, name, cls)
    validators = types.ModuleType("wtforms.validators")
    validators.Optional = type("Optional", (), {})  # type: ignore[attr-defined]
    validators.any_of = lambda values: ("any_of", list(values))  # type: ignore[attr-defined]
    wtforms.validators = validators  # type: ignore[attr-defined]
    babel = types.ModuleType("flask_babel")
    babel.lazy_gettext = lambda text: text  # type: ignore[attr-defined]
    fab = types.ModuleType("flask_appbuilder")
    widgets = types.ModuleType("flask_appbuilder.fieldwidgets")
    widgets.BS3TextFieldWidget = type("BS3TextFieldWidget", (), {})  # type: ignore[attr-defined]
    fab.fieldwidgets = widgets  # type: ignore[attr-defined]
    for name, module in {
        "wtforms": wtforms,
        "wtforms.validators": validators,
        "flask_babel": babel,
        "flask_appbuilder": fab,
        "flask_appbuilder.fieldwidgets": widgets,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    yield classes


def test_hook_form_widgets_agree_with_metadata(fake_fab: dict[str, type]) -> None:
    fields = _braze_connection_type()["conn-fields"]
    widgets = BrazeHook.get_connection_form_widgets()
    assert set(widgets) == set(fields)
    for name, spec in fields.items():
        widget = widgets[name]
        assert widget.label == spec["label"]
        assert widget.description == spec["description"]
        # Airflow 3.1 accepts only these four field classes.
        assert type(widget).__name__ in {"StringField", "IntegerField", "BooleanField", "PasswordField"}
    assert type(widgets["instance"]).__name__ == "StringField"
    assert ("any_of", fields["instance"]["schema"]["enum"]) in widgets["instance"].validators
    assert type(widgets["allow_custom_host"]).__name__ == "BooleanField"


# ---------------------------------------------------------------------------------------------- real Airflow
@pytest.fixture
def airflow_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    return env


def _airflow(env: dict[str, str], *args: str) -> str:
    script = Path(sys.executable).parent / "airflow"
    result = subprocess.run(
        [str(script), *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_airflow_providers_list_shows_the_provider(airflow_env: dict[str, str]) -> None:
    listed = json.loads(_airflow(airflow_env, "providers", "list", "--output", "json"))
    [ours] = [p for p in listed if p["package_name"] == "airflow-provider-aiq-braze"]
    assert ours["version"] == "0.1.0"


@pytest.mark.slow
def test_airflow_providers_hooks_shows_braze(airflow_env: dict[str, str]) -> None:
    hooks = json.loads(_airflow(airflow_env, "providers", "hooks", "--output", "json"))
    [braze] = [h for h in hooks if h.get("connection_type") == "braze"]
    assert braze["class"] == "airflow_provider_aiq_braze.hooks.braze.BrazeHook"
    assert braze["package_name"] == "airflow-provider-aiq-braze"
    assert braze["hook_name"] == "Braze"
    assert braze["conn_id_attribute_name"] == "braze_conn_id"


_DISCOVER = """
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from airflow.providers_manager import ProvidersManager
    pm = ProvidersManager()
    hook = pm.hooks.get("braze")
    widgets = sorted(k for k in pm.connection_form_widgets if k.startswith("extra__braze__"))
    behaviours = pm.field_behaviours.get("braze")
print(json.dumps({
    "hook": hook.hook_class_name if hook else None,
    "widgets": widgets,
    "behaviour": behaviours,
    "warnings": [str(w.message) for w in caught if "BrazeHook" in str(w.message)],
}))
"""


@pytest.mark.slow
def test_providers_manager_loads_hook_without_deprecation(airflow_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _DISCOVER],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["hook"] == "airflow_provider_aiq_braze.hooks.braze.BrazeHook"
    assert found["warnings"] == []
    if airflow.__version__ >= "3.2":
        # Declarative metadata (3.2+): the form comes from provider info, not from the hook.
        assert found["widgets"] == ["extra__braze__allow_custom_host", "extra__braze__instance"]
        assert found["behaviour"]["hidden_fields"] == ["schema", "login", "port"]

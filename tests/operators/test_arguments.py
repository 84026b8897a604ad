"""Arguments are checked where they are given: literal values by the constructor, templated ones once
rendered, before anything is read or sent; every refusal names the argument, what was given and
what is accepted."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset, ObjectStoragePath

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef]

from airflow_provider_aiq_braze.arguments import ArgumentError, ContractError
from airflow_provider_aiq_braze.hooks.braze import BrazeHook
from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox

OPERATORS = {
    "events": BrazeEventExportOperator,
    "campaigns": BrazeCampaignTriggerOperator,
    "audience": BrazeAudienceMembershipOperator,
}
BASE_REFUSED: list[tuple[str, Any]] = [
    ("source", None),
    ("source", 42),
    ("source", {"a": 1}),
    ("source", []),
    ("source", ["/data/a.csv", 7]),
    ("source", b"/data/a.csv"),
    ("max_reject_ratio", "abc"),
    ("max_reject_ratio", None),
    ("max_reject_ratio", 1.5),
    ("max_reject_ratio", float("nan")),
    ("max_reject_ratio", True),
    ("batch_size", "ten"),
    ("batch_size", 0),
    ("batch_size", 76),
    ("batch_size", 10.5),
    ("batch_size", None),
    ("max_workers", "4.5"),
    ("max_workers", 0),
    ("max_workers", [4]),
    ("format", "xml"),
    ("format", "CSV"),
    ("compression", "lz4"),
    ("compression", True),
    ("braze_conn_id", None),
    ("braze_conn_id", ""),
    ("source_conn_id", 5),
    ("state_conn_id", ["x"]),
    ("state_path", 5),
    ("rejects_path", {"path": "x"}),
    ("dry_run", "yes please"),
    ("force", 1),
    ("resend_uncertain", None),
    ("progress_interval", -1),
    ("braze_asset", "braze://x"),
]
OWN_REFUSED: dict[str, list[tuple[str, Any]]] = {
    "events": [
        ("identifier_preference", "braze_id"),
        ("identifier_preference", ["email"]),
        ("identifier_preference", []),
        ("identifier_preference", ["braze_id", "braze_id"]),
        ("property_columns", "plan"),
        ("property_columns", [1, 2]),
        ("event_name_column", None),
        ("timestamp_column", ""),
        ("properties_column", 3),
        ("properties_max_bytes", "big"),
        ("update_existing_only", "maybe"),
    ],
    "campaigns": [
        ("campaign_id", {"x": 1}),
        ("campaign_id", True),
        ("campaign_id", 1.5),
        ("trigger_properties", [1, 2]),
        ("trigger_properties", {"$bad": 1}),
        ("trigger_properties", {"k": "x" * 256}),
        ("trigger_properties", 7),
        ("send_id", 12),
        ("create_send_id", "sure"),
        ("attribute_columns", "tier"),
        ("attribute_columns", ["$tier"]),
        ("attribute_columns", ["tier", "tier"]),
        ("identifier_preference", ("external_id", "email")),
        ("batch_size", 51),
    ],
    "audience": [
        ("audience_id", {"x": 1}),
        ("audience_id", ["a"]),
        ("split_id", False),
        ("split_id", 2.0),
        ("attribute_template", "AIQ_{audience_id:A}_{split_id}"),
        ("attribute_template", "AIQ_{audience}_{split_id}"),
        ("attribute_template", "AIQ_{0}"),
        ("attribute_template", 5),
        ("attribute_template", ""),
        ("input_kind", "delta"),
        ("mode", "partial"),
        ("exit_value", True),
        ("exit_value", 0),
        ("exit_value", "false"),
        ("identifier_preference", "external_id"),
        ("attribute_columns", ["identifier"]),
        ("attribute_columns", ["external_id"]),
        ("member_column", ""),
        ("snapshot_key", 20261103),
        ("state_namespace", ""),
    ],
}
CASES = [(kind, name, value) for kind in OPERATORS for name, value in BASE_REFUSED + OWN_REFUSED[kind]]


def _build(kind: str, **kwargs: Any) -> Any:
    kwargs.setdefault("source", "/data/in.csv")
    if kind == "campaigns":
        kwargs.setdefault("campaign_id", "camp-1")
    return OPERATORS[kind](task_id=f"{kind}_task", **kwargs)


@pytest.mark.parametrize(("kind", "name", "value"), CASES, ids=[f"{k}-{n}-{v!r:.30}" for k, n, v in CASES])
def test_a_literal_argument_is_refused_by_the_constructor(kind: str, name: str, value: Any) -> None:
    with pytest.raises(ArgumentError) as caught:
        _build(kind, **{name: value})
    message = str(caught.value)
    assert message.startswith(f"{name} must be "), message
    assert "; got " in message and repr(value)[:20] in message, message
    assert caught.value.argument == name
    assert "Traceback" not in message and len(message) < 600


@pytest.mark.parametrize(
    ("name", "value", "kept"),
    [
        ("batch_size", "10", 10),
        ("batch_size", " 50 ", 50),
        ("max_workers", "4", 4),
        ("max_reject_ratio", "0.5", 0.5),
        ("max_reject_ratio", 1, 1.0),
        ("dry_run", "TRUE", True),
        ("force", "false", False),
        ("progress_interval", "2.5", 2.5),
    ],
)
def test_text_that_spells_a_value_is_read_as_it(name: str, value: Any, kept: Any) -> None:
    op = _build("events", **{name: value})
    attribute = "is_dry_run" if name == "dry_run" else name
    assert getattr(op, attribute) == kept and type(getattr(op, attribute)) is type(kept)


def test_accepted_values() -> None:
    op = _build("events", source=Path("/data/in.csv"), identifier_preference=("braze_id",))
    assert op.contract.identifier_preference == ("braze_id",)
    assert op.inlets == [Asset(name="file:///data/in.csv", uri="file:///data/in.csv")]
    _build("events", source=ObjectStoragePath("file:///data/in.csv"))
    _build("events", source=["/data/a.csv", Path("/data/b.csv")], braze_asset=Asset("braze://w/e"))
    audience = _build("audience", audience_id=48213, split_id=" A ", exit_value=None)
    assert (audience.audience_id, audience.split_id, audience.exit_value) == ("48213", " A ", None)
    audience.render_template_fields({})  # text is a template: read by the rule once rendered
    assert audience.split_id == "A"
    campaigns = _build("campaigns", campaign_id=7, trigger_properties='{"offer": "10%"}')
    assert campaigns.campaign_id == "7"
    assert campaigns.trigger_properties == '{"offer": "10%"}'  # text: checked once rendered


def test_send_id_and_create_send_id_exclude_each_other() -> None:
    with pytest.raises(ArgumentError, match=r"^send_id must be None when create_send_id=True"):
        _build("campaigns", send_id="s-1", create_send_id=True)


@pytest.mark.parametrize(
    ("kind", "templated", "rendered", "name"),
    [
        ("events", {"source": "{{ params.v }}"}, "", None),  # located, and refused, by locate()
        ("events", {"state_path": "{{ params.v }}"}, "", None),  # no state_path: the default
        ("campaigns", {"campaign_id": "{{ params.v }}"}, " ", None),
        ("campaigns", {"trigger_properties": "{{ params.v }}"}, "[1, 2]", "trigger_properties"),
        ("campaigns", {"trigger_properties": "{{ params.v }}"}, "{not json", "trigger_properties"),
        ("campaigns", {"send_id": "{{ params.v }}"}, "x" * 80, "send_id"),
        ("campaigns", {"send_id": "é"}, "", "send_id"),
        ("audience", {"snapshot_key": "{{ params.v }}"}, "2026-11-03", None),
        ("audience", {"state_path": "{{ params.v }}"}, "[1, 2]", None),  # text: a (relative) path
    ],
)
def test_templated_arguments_are_checked_once_rendered(
    kind: str, templated: dict[str, str], rendered: str, name: str | None
) -> None:
    op = _build(kind, **templated)  # a template is not refused before it is rendered
    context: Any = {"params": {"v": rendered}}
    if name is None:
        op.render_template_fields(context)
        return
    with pytest.raises(AirflowFailException, match=rf"^{name} must be .*; got "):
        op.render_template_fields(context)


def test_a_refused_run_sends_nothing_and_reads_nothing(
    tmp_path: Path, sandbox: BrazeSandbox, run_task: Any
) -> None:
    source = tmp_path / "r.csv"
    with source.open("w", newline="") as handle:
        csv.writer(handle).writerows([["external_id"], ["u1"]])
    op = _build("campaigns", source=str(source), state_path=str(tmp_path / "state"))
    op.trigger_properties = "[1, 2]"  # as a template would render it, with execute called directly
    with pytest.raises(AirflowFailException, match=r"^trigger_properties must be a JSON object"):
        run_task(op)
    assert sandbox.state.requests() == {}
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"braze_conn_id": None}, "braze_conn_id"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": "four"}, "max_connections"),
        ({"max_attempts": -1}, "max_attempts"),
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": (1, 2, 3)}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"rate_limits": {"users.track": "3000/3"}}, "rate_limits"),
        ({"max_rate_limit_waits": -1}, "max_rate_limit_waits"),
        ({"backoff_base": "fast"}, "backoff_base"),
        ({"backoff_max": None}, "backoff_max"),
    ],
)
def test_hook_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ArgumentError, match=rf"^{re.escape(name)} must be .*; got "):
        BrazeHook(**kwargs)
    assert issubclass(ArgumentError, ContractError) and issubclass(ArgumentError, ValueError)


def test_hook_reads_text_numbers() -> None:
    hook = BrazeHook(max_connections="4", timeout=("5", 30))
    assert hook._policy["max_connections"] == 4
    assert hook._timeout_arg == (5.0, 30.0)

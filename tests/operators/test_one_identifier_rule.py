"""The same staged value is the same Braze user (audience, split, campaign) in every operator.

One JSON Lines file, values of every JSON type in its identifier column, fed to the three
operators in dry runs: the identifiers in the request bodies and the rows rejected (with a reason
naming the column) are the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from tests.operators.conftest import read_jsonl

T = "2026-11-28T10:00:00Z"

#: external_id values, and the identifier each must become (``None``: the row is rejected).
VALUES: list[tuple[Any, str | None]] = [
    ("u1", "u1"),
    (" u2 ", "u2"),
    ("\tu3\u00a0", "u3"),
    (1, "1"),
    (-7, "-7"),
    (0, "0"),
    ("007", "007"),
    (12345678901234567890123, "12345678901234567890123"),
    (2**63, "9223372036854775808"),
    (True, None),
    (False, None),
    (1.0, None),
    (1e20, None),
    (1.5, None),
    (["u1", "u2"], None),
    ({"x": 1}, None),
    ([], None),
    (None, None),
    ("   ", None),
]


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "rows.jsonl"
    path.parent.mkdir(parents=True)
    rows = [
        {"external_id": value, "event_name": "viewed", "timestamp": T, "audience_id": "A", "split_id": "1"}
        for value, _ in VALUES
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _sent(result: dict[str, Any], array: str, key: str) -> list[str]:
    bodies = read_jsonl(result["dry_run_path"])
    return sorted(obj[key] for body in bodies for obj in body[array])


def _rejects(result: dict[str, Any]) -> dict[int, str]:
    return {r["row"]: r["reason"] for r in read_jsonl(result["rejects_path"])}


def test_one_value_is_one_user_in_every_operator(tmp_path: Path, run_task: Callable[..., dict]) -> None:
    source = str(_file(tmp_path))
    common: dict[str, Any] = {"source": source, "dry_run": True, "max_reject_ratio": 1.0}
    events = run_task(BrazeEventExportOperator(task_id="e", state_path=str(tmp_path / "e"), **common))
    campaigns = run_task(
        BrazeCampaignTriggerOperator(
            task_id="c", state_path=str(tmp_path / "c"), campaign_id="camp-1", **common
        )
    )
    audience = run_task(
        BrazeAudienceMembershipOperator(
            task_id="a",
            state_path=str(tmp_path / "a"),
            snapshot_key="2026-11-28",
            update_existing_only=False,
            **common,
        )
    )
    expected = sorted(text for _, text in VALUES if text is not None)
    assert _sent(events, "events", "external_id") == expected
    assert _sent(campaigns, "recipients", "external_user_id") == expected
    assert _sent(audience, "attributes", "external_id") == expected

    rejected_rows = {i + 1 for i, (_, text) in enumerate(VALUES) if text is None}
    for result in (events, campaigns, audience):
        rejects = _rejects(result)
        assert set(rejects) == rejected_rows, result
        for row, reason in rejects.items():
            assert "'external_id'" in reason, reason
            value = VALUES[row - 1][0]
            if value is not None and not isinstance(value, str):
                assert "not text: identifiers must be text or whole numbers" in reason, reason
    # the same reason, word for word, in every operator
    assert _rejects(events) == _rejects(campaigns)
    assert {r: t for r, t in _rejects(audience).items() if "holds" in t} == {
        r: t for r, t in _rejects(events).items() if "holds" in t
    }


def test_audience_and_split_ids_follow_the_same_rule(tmp_path: Path, run_task: Callable[..., dict]) -> None:
    path = tmp_path / "m.jsonl"
    rows = [
        {"audience_id": 12, "split_id": " A ", "external_id": "u1"},
        {"audience_id": {"x": 1}, "split_id": "A", "external_id": "u2"},
        {"audience_id": "12", "split_id": True, "external_id": "u3"},
        {"audience_id": 1.0, "split_id": "A", "external_id": "u4"},
        {"audience_id": "12", "split_id": 7, "external_id": "u5"},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    result = run_task(
        BrazeAudienceMembershipOperator(
            task_id="a",
            source=str(path),
            state_path=str(tmp_path / "state"),
            snapshot_key="2026-11-28",
            update_existing_only=False,
            dry_run=True,
            max_reject_ratio=1.0,
        )
    )
    objects = [obj for body in read_jsonl(result["dry_run_path"]) for obj in body["attributes"]]
    assert {o["external_id"]: sorted(k for k in o if k.startswith("AIQ_")) for o in objects} == {
        "u1": ["AIQ_12_A"],
        "u5": ["AIQ_12_7"],
    }
    rejects = _rejects(result)
    assert rejects[2].startswith("column 'audience_id' holds an object")
    assert rejects[3].startswith("column 'split_id' holds a boolean")
    assert rejects[4].startswith("column 'audience_id' holds a floating-point number")
    assert set(rejects) == {2, 3, 4}


def test_campaign_ids_follow_the_same_rule(tmp_path: Path, run_task: Callable[..., dict]) -> None:
    path = tmp_path / "r.jsonl"
    rows = [
        {"external_id": "u1", "campaign_id": 12},
        {"external_id": "u2", "campaign_id": " c-2 "},
        {"external_id": "u3", "campaign_id": True},
        {"external_id": "u4", "campaign_id": {"x": 1}},
        {"external_id": "u5", "campaign_id": None},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    result = run_task(
        BrazeCampaignTriggerOperator(
            task_id="c",
            source=str(path),
            state_path=str(tmp_path / "state"),
            campaign_id=99,
            dry_run=True,
            max_reject_ratio=1.0,
        )
    )
    bodies = read_jsonl(result["dry_run_path"])
    sent = {r["external_user_id"]: body["campaign_id"] for body in bodies for r in body["recipients"]}
    assert sent == {"u1": "12", "u2": "c-2", "u5": "99"}
    rejects = _rejects(result)
    assert rejects[3].startswith("column 'campaign_id' holds a boolean (true)")
    assert rejects[4].startswith("column 'campaign_id' holds an object")

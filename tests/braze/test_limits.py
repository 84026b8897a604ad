"""Braze's published limits."""

from __future__ import annotations

import pytest

from airflow_provider_aiq_braze.braze.limits import (
    ENDPOINT_PERMISSIONS,
    GROUP_RATES,
    ObjectCountRule,
    RateLimit,
    rate_group,
)


@pytest.mark.parametrize(
    ("rule", "sizes", "exceeded"),
    [
        (ObjectCountRule.PER_ARRAY, (75, 75, 75), False),
        (ObjectCountRule.PER_ARRAY, (76, 0, 0), True),
        (ObjectCountRule.PER_ARRAY, (0, 0, 76), True),
        (ObjectCountRule.COMBINED_75, (25, 25, 25), False),
        (ObjectCountRule.COMBINED_75, (25, 25, 26), True),
        (ObjectCountRule.COMBINED_75, (75, 0, 0), False),
        (ObjectCountRule.COMBINED_50, (50, 0, 0), False),
        (ObjectCountRule.COMBINED_50, (20, 20, 11), True),
    ],
)
def test_object_count_rule(rule: ObjectCountRule, sizes: tuple[int, int, int], exceeded: bool) -> None:
    assert rule.exceeded(*sizes) is exceeded


def test_object_count_rule_values() -> None:
    assert ObjectCountRule("per-array") is ObjectCountRule.PER_ARRAY
    assert ObjectCountRule("combined-75") is ObjectCountRule.COMBINED_75
    assert ObjectCountRule("combined-50") is ObjectCountRule.COMBINED_50


def test_rate_groups() -> None:
    assert rate_group("/users/track") == "users.track"
    assert rate_group("/campaigns/trigger/send") == "messaging"
    assert rate_group("/canvas/trigger/send") == "messaging"
    assert rate_group("/sends/id/create") == "default"
    assert GROUP_RATES["users.track"] == RateLimit(3000, 3.0)
    assert GROUP_RATES["users.track"].per_second == 1000.0
    assert GROUP_RATES["messaging"] == RateLimit(250_000, 3600.0)


def test_endpoint_permissions() -> None:
    assert ENDPOINT_PERMISSIONS == {
        "/users/track": "users.track",
        "/campaigns/trigger/send": "campaigns.trigger.send",
        "/sends/id/create": "sends.id.create",
        "/campaigns/list": "campaigns.list",
        "/users/export/ids": "users.export.ids",
    }

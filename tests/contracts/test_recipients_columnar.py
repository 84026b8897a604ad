"""The columnar path of the campaign recipients contract gives exactly the row path's JSON and key,
or defers to it."""

from __future__ import annotations

import itertools
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_aiq_braze.braze.encoding import to_json
from airflow_provider_aiq_braze.contracts.recipients import RecipientContract
from tests.contracts.test_events_columnar import IDENTIFIERS, VALUES

CAMPAIGNS = [None, "", "camp-1", " camp-2", "c\u00e9", "x" * 300]
PROPERTIES = [None, "", '{"a": 1}', "not json"]


def _both(contract: RecipientContract, rows: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    """Each row's columnar (text, campaign, key) next to what the row path gives."""
    names = list(rows[0])
    batch = pa.RecordBatch.from_pylist(rows, schema=pa.schema([(n, pa.string()) for n in names]))
    texts, campaigns, keys = contract.encode_batch(batch)
    return [
        ((text, campaign, key), contract.to_recipient(row))
        for text, campaign, key, row in zip(texts, campaigns, keys, rows, strict=True)
    ]


def _assert_same(contract: RecipientContract, pairs: list[tuple[Any, Any]]) -> int:
    """Every columnar text, campaign and key equal the row path's; returns the fast rows."""
    fast = 0
    for (text, campaign, key), mapped in pairs:
        if text is None:
            assert campaign is None and key is None
            continue
        assert not isinstance(mapped, str), f"columnar path accepted a row the row path rejects: {mapped}"
        expected_campaign, recipient = mapped
        assert text == to_json(recipient)
        assert campaign == expected_campaign
        assert key == contract.recipient_key(expected_campaign, recipient)
        fast += 1
    return fast


@pytest.mark.parametrize("campaign_id", [None, "camp-op"])
def test_identifiers_campaigns_and_properties(campaign_id: str | None) -> None:
    rows = [
        {
            "external_id": ext,
            "braze_id": bid,
            "campaign_id": camp,
            "trigger_properties": props,
            "offer": value,
        }
        for ext, bid, camp, props, value in itertools.product(
            IDENTIFIERS, [None, "", "b-1", " b-2"], CAMPAIGNS, PROPERTIES, VALUES[:6]
        )
    ]
    contract = RecipientContract(campaign_id=campaign_id)
    fast = _assert_same(contract, _both(contract, rows))
    assert fast > 200  # the plain rows took the columnar path


@pytest.mark.parametrize(
    "options",
    [
        {"identifier_preference": ("braze_id", "external_id")},
        {"identifier_preference": ("external_id",)},
        {"property_columns": ["offer", "missing", "offer"]},
        {"campaign_id_column": None, "campaign_id": "c"},
        {"trigger_properties_column": None},
    ],
)
def test_options(options: dict[str, Any]) -> None:
    rows = [
        {"external_id": ext, "braze_id": bid, "campaign_id": "camp", "trigger_properties": props, "offer": v}
        for ext, bid, props, v in itertools.product(IDENTIFIERS, [None, "b-1"], PROPERTIES, VALUES)
    ]
    contract = RecipientContract(**options)
    assert _assert_same(contract, _both(contract, rows)) > 0


@pytest.mark.parametrize(
    "contract",
    [
        RecipientContract(campaign_id="c", attribute_columns=["tier"]),
        RecipientContract(campaign_id="c", attribute_columns=["tier"], send_to_existing_only=False),
    ],
)
def test_attribute_columns_take_the_row_path(contract: RecipientContract) -> None:
    rows = [{"external_id": "u1", "tier": "gold"}]
    assert _both(contract, rows)[0][0] == (None, None, None)


def test_bad_property_names_take_the_row_path() -> None:
    rows = [{"external_id": "u1", "$x": "v", "p" * 256: "v", 'q"k': "v", "ok": "v"}]
    contract = RecipientContract(campaign_id="c")
    pairs = _both(contract, rows)
    assert pairs[0][0] == (None, None, None)
    assert isinstance(pairs[0][1], str)  # the row path rejects the '$x' name

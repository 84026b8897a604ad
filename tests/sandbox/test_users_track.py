"""/users/track: object-level "minor errors", profiles, attributes, events, data points."""

from __future__ import annotations

import pytest

from tests.sandbox.conftest import WHEN, Api, event

BRAZE_ID = "0123456789abcdef01234567"
INVALID_EMAIL = "The value provided for the 'email' field is not a valid email."


def _errors(response) -> list[tuple[str, int]]:
    return [(e["input_array"], e["index"]) for e in response.json().get("errors", [])]


def test_success_shape(api):
    response = api.track(attributes=[{"external_id": "u1", "AIQ_1_2": True}], events=[event()])
    assert response.status_code == 201
    assert response.json() == {"message": "success", "attributes_processed": 1, "events_processed": 1}


MISSING_ID = "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"
NO_VALID_DATA = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        ({"name": "x", "time": WHEN}, MISSING_ID),
        ({"external_id": "u9", "email": "a@example.com", "name": "x", "time": WHEN}, "only one of"),
        ({"external_id": "u9", "braze_id": BRAZE_ID, "name": "x", "time": WHEN}, "only one of"),
        ({"external_id": "u9", "time": WHEN}, "'name' is required"),
        ({"external_id": "u9", "name": "", "time": WHEN}, "'name' is not valid"),
        ({"external_id": "u9", "name": "n" * 256, "time": WHEN}, "'name' is not valid"),
        ({"external_id": "u9", "name": "x"}, "'time' is required"),
        ({"external_id": "u9", "name": "x", "time": "yesterday"}, "'time' is not valid"),
        ({"external_id": "u9", "name": "x", "time": [WHEN]}, "'time' is not valid"),
        ({"external_id": "u9", "name": ["purchase_intent"], "time": WHEN}, "'name' is not valid"),
        ({"external_id": "u9", "name": "x", "time": "2024-13-45T00:00:00"}, "'time' is not valid"),
        ({"external_id": "u9", "name": "x", "time": WHEN, "properties": {"": 1}}, "'' is not valid"),
        ({"external_id": "u9", "name": "x", "time": WHEN, "properties": {"k" * 256: 1}}, "is not valid"),
        (
            {"external_id": "u9", "name": "x", "time": WHEN, "properties": {"$price": 1}},
            "'$price' is not valid",
        ),
        ({"external_id": "u9", "name": "x", "time": WHEN, "properties": {"time": 1}}, "'time' is not valid"),
        (
            {"external_id": "u9", "name": "x", "time": WHEN, "properties": {"event_name": "y"}},
            "'event_name' is not valid",
        ),
        (
            {"external_id": "u9", "name": "x", "time": WHEN, "properties": {"s": "v" * 256}},
            "'properties.s' is not valid",
        ),
        (
            {"external_id": "u9", "name": "x", "time": WHEN, "properties": {"n": {"$x": 1}}},
            "'properties.n' is not valid",
        ),
        ({"external_id": "u9", "name": "x", "time": WHEN, "properties": [1, 2]}, "'properties' is not valid"),
        ({"user_alias": {"alias_name": "a"}, "name": "x", "time": WHEN}, "'user_alias' is not valid"),
        ({"external_id": "", "name": "x", "time": WHEN}, "'external_id' is not valid"),
        ({"external_id": 42, "name": "x", "time": WHEN}, "'external_id' is not valid"),
        ({"email": "not an email", "name": "x", "time": WHEN}, INVALID_EMAIL),
        ({"phone": "555-0100", "name": "x", "time": WHEN}, "not a valid phone number"),
        (
            {"external_id": "u9", "name": "x", "time": WHEN, "_update_existing_only": "yes"},
            "'_update_existing_only' is not valid",
        ),
        ("not an object", MISSING_ID),
    ],
)
def test_bad_event_is_a_minor_error_and_the_rest_is_processed(api, bad, kind):
    response = api.track(events=[event("u1"), bad, event("u2")])
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "success"
    assert body["events_processed"] == 2
    assert _errors(response) == [("events", 1)]
    assert kind in body["errors"][0]["type"]
    events = api.sandbox.state.events()
    assert [e["external_id"] for e in events] == ["u1", "u2"]
    assert api.sandbox.state.profile("u9") is None


def test_no_valid_object_is_400_with_the_minor_errors(api):
    # Live Braze's answer when no object is valid (RudderStack fixtures, "invalid_scenario2").
    purchase = {"external_id": "u1", "product_id": "p", "currency": "USD", "price": 1, "time": WHEN}
    response = api.track(
        events=[{"name": "x", "time": WHEN}, {"name": "y", "time": WHEN}],
        purchases=[{**purchase, "quantity": "invalid quantity"}],
    )
    assert response.status_code == 400
    assert response.json() == {
        "message": NO_VALID_DATA,
        "errors": [
            {"type": MISSING_ID, "input_array": "events", "index": 0},
            {"type": MISSING_ID, "input_array": "events", "index": 1},
            {"type": "'quantity' is not valid", "input_array": "purchases", "index": 0},
        ],
    }
    assert api.sandbox.state.stats()["objects_processed"]["events"] == 0
    assert api.sandbox.state.profiles() == []


def test_processed_counts_only_arrays_with_a_valid_object(api):
    # Live Braze left out purchases_processed when the only purchase was invalid (RudderStack
    # fixture "invalid_scenario1"); the old sandbox answered "purchases_processed": 0.
    purchase = {"external_id": "u1", "product_id": "p", "currency": "USD", "price": 1, "time": WHEN}
    response = api.track(
        events=[event("u1"), {"name": "x", "time": WHEN}], purchases=[{**purchase, "quantity": 0}]
    )
    assert response.status_code == 201
    assert response.json() == {
        "message": "success",
        "events_processed": 1,
        "errors": [
            {"type": MISSING_ID, "input_array": "events", "index": 1},
            {"type": "'quantity' is not valid", "input_array": "purchases", "index": 0},
        ],
    }


def test_event_properties_with_nested_values_over_the_size_limit(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(properties_max_bytes=1000)
    api = Api(sandbox)
    big = {f"k{i}": ["v" * 200] for i in range(5)}
    response = api.track(events=[event("u1", properties={"a": [1]}), event("u2", properties=big)])
    assert response.status_code == 201
    assert response.json()["errors"] == [
        {"type": "'properties' is not valid", "input_array": "events", "index": 1}
    ]
    assert response.json()["events_processed"] == 1


def test_default_properties_limit_is_the_current_100_kb(api):
    # event_object.md: the payload limit applies to property objects holding arrays or objects;
    # 100 KB in the current pages (50 KB in older ones, selectable).
    at_limit = {f"k{i}": ["v" * 250] for i in range(390)}  # about 99 KB serialized
    over = {f"k{i}": ["v" * 250] for i in range(420)}  # about 107 KB serialized
    response = api.track(events=[event("u1", properties=at_limit), event("u2", properties=over)])
    assert _errors(response) == [("events", 1)]


def test_flat_properties_have_no_size_limit(braze_sandbox_factory):
    # The old sandbox bounded every properties object; Braze bounds only those holding arrays or
    # objects ("Event property objects that contain array or object values ...", event_object.md).
    sandbox = braze_sandbox_factory(properties_max_bytes=1000)
    flat = {f"k{i}": "v" * 250 for i in range(20)}  # about 5 KB, strings only
    response = Api(sandbox).track(events=[event("u1", properties=flat)])
    assert response.status_code == 201
    assert "errors" not in response.json()


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        ({"AIQ_1_2": True}, MISSING_ID),
        ({"external_id": "u9", "braze_id": BRAZE_ID, "x": 1}, "only one of"),
        ({"braze_id": BRAZE_ID, "user_alias": {"alias_name": "a", "alias_label": "b"}}, "only one of"),
        ({"external_id": "u9", "": True}, "'' is not valid"),
        ({"external_id": "u9", "a" * 256: True}, "is not valid"),
        ({"external_id": "u9", "$bad": True}, "'$bad' is not valid"),
        ({"external_id": "u9", "nick": "n" * 256}, "'nick' is not valid"),
        ({"external_id": "u9", "tags": {"$x": 1}}, "'tags' is not valid"),
        ({"external_id": "u9", "email": "not an email"}, INVALID_EMAIL),
        ({"external_id": "u9", "email": "a@192.168.0.1"}, INVALID_EMAIL),
    ],
)
def test_bad_attribute_object_is_a_minor_error(api, bad, kind):
    response = api.track(attributes=[{"external_id": "u1", "a": 1}, {"external_id": "u2", "a": 2}, bad])
    assert response.status_code == 201
    assert _errors(response) == [("attributes", 2)]
    assert kind in response.json()["errors"][0]["type"]
    assert response.json()["attributes_processed"] == 2
    assert api.sandbox.state.profile("u2")["attributes"] == {"a": 2}
    assert api.sandbox.state.profile("u9") is None
    assert api.sandbox.state.data_points == 2


@pytest.mark.parametrize(
    ("email", "valid"),
    [
        ("ann@example.com", True),
        ("ann.o'neil+tag@example.co.uk", True),
        ("élodie@example.fr", True),  # Unicode letters in the local part
        ("x@gmail.com", False),  # Gmail local parts: at least two characters
        ("ann smith@example.com", False),  # no whitespace
        (".ann@example.com", False),  # cannot start with a special character
        ("ann.@example.com", False),
        ("ann@example", False),  # at least two labels
        ("ann@example.123", False),  # the top-level domain is not all digits
        ("a.b@outlook.com", True),
        ("a..b@outlook.com", False),  # Microsoft domains: no consecutive periods
        ("ann@-example.com", False),
    ],
)
def test_email_validation_follows_brazes_rules(api, email, valid):
    response = api.track(attributes=[{"external_id": "u1", "email": email}, {"external_id": "u2", "x": 1}])
    assert ("errors" not in response.json()) is valid, response.text


def test_malformed_braze_id_is_only_an_unknown_user(api):
    # Braze documents no format for braze_id (the old sandbox, like the client, required 24 hex
    # characters): an id that names nobody is not found, without error.
    response = api.track(events=[{"braze_id": "not-a-braze-id", "name": "x", "time": WHEN}])
    assert response.status_code == 201
    assert response.json() == {"message": "success", "events_processed": 1}
    assert api.sandbox.state.events() == []
    assert api.sandbox.state.counter("unknown_braze_id") == 1


def test_errors_in_several_arrays_are_reported_in_order(api):
    response = api.track(
        attributes=[{"x": 1}, {"external_id": "u1", "x": 1}],
        events=[event(), {"external_id": "u1"}],
        purchases=[
            {"external_id": "u1", "product_id": "p", "currency": "usd", "price": 1, "time": WHEN},
            {"external_id": "u1", "product_id": "p", "currency": "USD", "price": 9.5, "time": WHEN},
        ],
    )
    assert _errors(response) == [("attributes", 0), ("events", 1), ("purchases", 0)]
    body = response.json()
    assert (body["attributes_processed"], body["events_processed"], body["purchases_processed"]) == (1, 1, 1)
    assert api.sandbox.state.purchases()[0]["price"] == 9.5


def test_email_is_an_attribute_when_a_primary_id_is_present(api):
    api.track(attributes=[{"external_id": "u1", "email": "a@example.com", "first_name": "Ann"}])
    profile = api.sandbox.state.profile("u1")
    assert profile["email"] == "a@example.com"
    assert profile["attributes"] == {"email": "a@example.com", "first_name": "Ann"}
    assert api.sandbox.state.data_points == 2


def test_email_wins_over_phone_without_a_primary_id(api):
    response = api.track(attributes=[{"email": "a@example.com", "phone": "+15555550100", "x": 1}])
    assert "errors" not in response.json()
    (profile,) = api.sandbox.state.profiles()
    assert profile["email"] == "a@example.com"
    assert profile["phone"] == "+15555550100"  # written as an attribute
    assert profile["external_id"] is None
    assert api.sandbox.state.data_points == 2


def test_external_id_creates_a_profile_with_a_generated_braze_id(api):
    api.track(attributes=[{"external_id": "u1", "AIQ_7_1": True}])
    profile = api.sandbox.state.profile("u1")
    assert len(profile["braze_id"]) == 24
    assert int(profile["braze_id"], 16) >= 0
    # the generated braze_id identifies the same profile
    api.track(attributes=[{"braze_id": profile["braze_id"], "AIQ_7_1": False}])
    assert api.sandbox.state.profile("u1")["attributes"] == {"AIQ_7_1": False}
    assert len(api.sandbox.state.profiles()) == 1


def test_unknown_braze_id_is_ignored_without_error(api):
    response = api.track(
        attributes=[{"braze_id": BRAZE_ID, "AIQ_7_1": True}],
        events=[{"braze_id": BRAZE_ID, "name": "x", "time": WHEN}],
    )
    assert response.status_code == 201
    assert "errors" not in response.json()
    assert api.sandbox.state.profiles() == []
    assert api.sandbox.state.events() == []
    assert api.sandbox.state.data_points == 0
    assert api.sandbox.state.counter("unknown_braze_id") == 2


def test_update_existing_only_true_skips_unknown_users(api):
    response = api.track(
        attributes=[
            {"external_id": "new", "AIQ_1_1": True, "_update_existing_only": True},
            {"external_id": "known", "AIQ_1_1": True},
        ],
        events=[event("new", _update_existing_only=True)],
    )
    assert response.status_code == 201
    assert "errors" not in response.json()
    assert response.json()["attributes_processed"] == 2
    assert api.sandbox.state.profile("new") is None
    assert api.sandbox.state.events() == []
    assert api.sandbox.state.data_points == 1  # the skipped write does not count
    api.track(attributes=[{"external_id": "known", "AIQ_1_1": False, "_update_existing_only": True}])
    assert api.sandbox.state.profile("known")["attributes"] == {"AIQ_1_1": False}
    assert api.sandbox.state.data_points == 2  # `_update_existing_only` itself is not a data point


def test_alias_profiles_need_update_existing_only_false(api):
    alias = {"alias_name": "aiq-42", "alias_label": "actioniq"}
    api.track(attributes=[{"user_alias": alias, "x": 1}])
    assert api.sandbox.state.profiles() == []
    api.track(attributes=[{"user_alias": alias, "x": 1, "_update_existing_only": False}])
    profiles = api.sandbox.state.profiles()
    assert profiles[0]["user_aliases"] == [{"alias_label": "actioniq", "alias_name": "aiq-42"}]
    api.track(events=[{"user_alias": alias, "name": "x", "time": WHEN}])
    assert len(api.sandbox.state.events()) == 1


def test_null_removes_an_attribute_and_empty_string_sets_it(api):
    api.track(attributes=[{"external_id": "u1", "AIQ_1_1": True, "nick": "n"}])
    api.track(attributes=[{"external_id": "u1", "AIQ_1_1": None, "nick": ""}])
    assert api.sandbox.state.profile("u1")["attributes"] == {"nick": ""}


def test_every_attribute_write_counts_a_data_point_unchanged_or_not(api):
    api.track(attributes=[{"external_id": "u1", "AIQ_1_1": True, "AIQ_1_2": False}])
    assert api.sandbox.state.data_points == 2
    api.track(attributes=[{"external_id": "u1", "AIQ_1_1": True, "AIQ_1_2": False}])  # unchanged
    assert api.sandbox.state.data_points == 4
    api.track(attributes=[{"external_id": "u1", "AIQ_1_1": None}])  # removal is a write too
    assert api.sandbox.state.data_points == 5
    api.track(attributes=[{"external_id": "u2"}])  # identifier only: no data point
    assert api.sandbox.state.data_points == 5
    api.track(events=[event("u1")])  # events are counted apart
    assert api.sandbox.state.data_points == 5
    assert api.admin("stats")["data_points"] == 5


def test_rejected_objects_do_not_count_data_points(api):
    api.track(attributes=[{"external_id": "u1", "ok": 1, "$bad": 2}])
    assert api.sandbox.state.data_points == 0
    assert api.sandbox.state.profile("u1") is None


def test_event_times_are_normalised(api):
    api.track(
        events=[
            event("u1", time="2024-05-01T12:00:00"),  # no zone: UTC
            event("u1", time="2024-05-01T14:00:00+02:00"),
            event("u1", time="2999-01-01T00:00:00Z"),  # future: now
        ]
    )
    times = [e["time"] for e in api.sandbox.state.events()]
    assert times[0] == "2024-05-01T12:00:00+00:00"
    assert times[1] == "2024-05-01T12:00:00+00:00"
    assert times[2] < "2999"


def test_events_are_never_deduplicated(api):
    api.track(events=[event("u1"), event("u1")])
    api.track(events=[event("u1")])
    assert len(api.sandbox.state.events()) == 3
    assert api.sandbox.state.stats()["objects_processed"]["events"] == 3


def test_event_record_keeps_properties_and_app_id(api):
    api.track(events=[event("u1", properties={"score": 0.5, "tags": ["a"]}, app_id="app-1")])
    (recorded,) = api.sandbox.state.events()
    assert recorded["properties"] == {"score": 0.5, "tags": ["a"]}
    assert recorded["app_id"] == "app-1"
    assert recorded["braze_id"] == api.sandbox.state.profile("u1")["braze_id"]


def test_purchase_errors(api):
    base = {"external_id": "u1", "product_id": "p", "currency": "USD", "price": 1, "time": WHEN}
    response = api.track(
        purchases=[
            base,
            {**base, "price": "1"},
            {**base, "quantity": 101},
            {**base, "properties": {"price": 2}},
            {k: v for k, v in base.items() if k != "product_id"},
            {**base, "currency": "usd"},
            {**base, "quantity": "invalid quantity"},
        ]
    )
    assert [e["type"] for e in response.json()["errors"]] == [
        "'price' is not valid",
        "'quantity' is not valid",
        "'price' is not valid",
        "'product_id' is required",
        "'currency' is not valid",
        "'quantity' is not valid",
    ]
    assert _errors(response) == [("purchases", i) for i in range(1, 7)]
    assert response.json()["purchases_processed"] == 1

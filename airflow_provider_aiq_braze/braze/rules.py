"""Braze's payload rules for names and values, shared by the operators and the sandbox.

Each check returns ``None`` when the input is valid, or a reason a person can act on.
Sources: braze-docs ``_docs/_api/objects_filters/event_object.md``,
``user_attributes_object.md`` and ``_docs/_user_guide/data/custom_data/custom_attributes.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, time
from decimal import Decimal
from typing import Any

from airflow_provider_aiq_braze.braze.encoding import to_json
from airflow_provider_aiq_braze.braze.limits import MAX_KEY_LENGTH, MAX_STRING_VALUE_LENGTH

#: Event property names Braze rejects.
RESERVED_EVENT_PROPERTY_NAMES = frozenset({"time", "event_name"})
#: Keys of an attribute object that are not custom attributes (identifiers and flags).
RESERVED_ATTRIBUTE_NAMES = frozenset({"external_id", "braze_id", "user_alias", "_update_existing_only"})
#: Purchase property names Braze rejects (braze-docs ``_docs/_api/objects_filters/purchase_object.md``).
RESERVED_PURCHASE_PROPERTY_NAMES = frozenset(
    {"time", "product_id", "quantity", "event_name", "price", "currency"}
)
#: Standard profile fields an attribute object may set; not custom attributes
#: (braze-docs ``_docs/_api/objects_filters/user_attributes_object.md``).
STANDARD_ATTRIBUTE_NAMES = frozenset(
    {
        "country",
        "current_location",
        "date_of_first_session",
        "date_of_last_session",
        "dob",
        "email",
        "email_subscribe",
        "email_open_tracking_disabled",
        "email_click_tracking_disabled",
        "facebook",
        "first_name",
        "gender",
        "home_city",
        "image_url",
        "language",
        "last_name",
        "marked_email_as_spam_at",
        "phone",
        "push_subscribe",
        "push_tokens",
        "subscription_groups",
        "time_zone",
        "twitter",
    }
)


def name_problem(
    name: object, *, what: str = "property", reserved: frozenset[str] = frozenset()
) -> str | None:
    """Check an attribute, event or property name.

    :param name: the name to check.
    :param what: what the name is, used in the reason (``property``, ``attribute``, ``event name``).
    :param reserved: names Braze refuses in this position.
    """
    if not isinstance(name, str):
        return f"{what} name must be a string, got {type(name).__name__}"
    if not name.strip():
        return f"{what} name is empty"
    if len(name) > MAX_KEY_LENGTH:
        return f"{what} name is {len(name)} characters long (Braze allows at most {MAX_KEY_LENGTH})"
    if name.startswith("$"):
        return f"{what} name {name[:40]!r} starts with '$', which Braze reserves"
    if name in reserved:
        return f"{what} name {name!r} is reserved by Braze"
    return None


def value_problem(value: Any, *, where: str = "value") -> str | None:
    """Check one attribute or property value (recursively for arrays and objects).

    :param value: the value to check.
    :param where: a label for the reason, e.g. the property name.
    """
    if value is None or isinstance(value, bool | int | date | time):
        return None
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            return f"{where} is {value!r}; Braze accepts only finite numbers"
        return None
    if isinstance(value, str):
        if len(value) > MAX_STRING_VALUE_LENGTH:
            return (
                f"{where} is a string of {len(value)} characters "
                f"(Braze allows at most {MAX_STRING_VALUE_LENGTH})"
            )
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            problem = value_problem(item, where=f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            problem = name_problem(key, what=f"{where} key") or value_problem(item, where=f"{where}.{key}")
            if problem:
                return problem
        return None
    return f"{where} has unsupported type {type(value).__name__}"


def properties_problem(
    properties: Any,
    *,
    max_bytes: int,
    reserved: frozenset[str] = RESERVED_EVENT_PROPERTY_NAMES,
    what: str = "property",
) -> str | None:
    """Check an event's ``properties`` or a recipient's ``trigger_properties`` object.

    Braze bounds the size of a properties object only when it holds an array or an object ("Event
    property objects that contain array or object values can have an event property payload of up
    to 100 KB", braze-docs ``_docs/_api/objects_filters/event_object.md``; 50 KB in older pages):
    a flat object of scalars is never refused for its size here.

    :param properties: the object to check.
    :param max_bytes: the largest serialized size of an object holding arrays or objects.
    :param reserved: property names Braze refuses.
    :param what: what a key is, used in the reason.
    """
    if properties.__class__ is not dict and not isinstance(properties, Mapping):
        return f"{what} object must be a JSON object, got {type(properties).__name__}"
    nested = False
    for key, value in properties.items():
        if (
            key.__class__ is not str
            or not key
            or len(key) > MAX_KEY_LENGTH
            or key[0] == "$"
            or key[0].isspace()
            or key in reserved
        ):
            problem = name_problem(key, what=what, reserved=reserved)
            if problem:
                return problem
        kind = value.__class__
        if (
            (kind is str and len(value) <= MAX_STRING_VALUE_LENGTH)
            or kind is int
            or kind is bool
            or value is None
        ):
            continue  # the common flat values: nothing more to check
        problem = value_problem(value, where=f"{what} {key!r}")
        if problem:
            return problem
        nested = nested or isinstance(value, list | tuple | Mapping)
    if not nested:
        return None
    size = len(to_json(properties).encode())
    if size > max_bytes:
        return (
            f"{what} object holds arrays or objects and is {size} bytes once serialized (Braze accepts at "
            f"most {max_bytes} for such an object; see properties_max_bytes)"
        )
    return None

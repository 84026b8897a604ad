"""Request validation for the sandbox: pure functions, no state, no locks.

Request-level problems raise :class:`RequestError` (nothing is processed); object-level problems
become "minor errors" ``{"type", "input_array", "index"}`` while the valid objects go on to be
applied. The name and value rules themselves live in :mod:`airflow_provider_aiq_braze.braze.rules`;
this module only decides where each rule applies.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_aiq_braze.braze import rules
from airflow_provider_aiq_braze.braze.limits import (
    MAX_STRING_VALUE_LENGTH,
    SEND_ID_MAX_LENGTH,
    TRIGGER_MAX_RECIPIENTS,
    ObjectCountRule,
)

#: Keys that identify a user in ``/users/track`` objects, the first three being primary ids.
TRACK_IDENTIFIER_KEYS = ("external_id", "braze_id", "user_alias", "email", "phone")
_PRIMARY_KEYS = ("external_id", "braze_id", "user_alias")
_SECONDARY_KEYS = ("email", "phone")
#: Keys that identify a recipient of ``/campaigns/trigger/send``.
RECIPIENT_IDENTIFIER_KEYS = ("external_user_id", "braze_id", "user_alias", "email")
#: Keys of an attribute object that are never written as attributes.
_NOT_WRITTEN = frozenset(_PRIMARY_KEYS) | {"_update_existing_only"}
#: External ids Braze accepts in one ``/users/export/ids`` request.
EXPORT_MAX_IDS = 50

_MAX_INPUT = "Max Input Length Exceeded"
_TOO_MANY_RECIPIENTS = "The max number of external_ids and aliases per request was exceeded"

#: ``(kind, value)``: ``kind`` is ``external_id``, ``braze_id``, ``user_alias``, ``email`` or ``phone``;
#: the value of a ``user_alias`` is ``"alias_label\x00alias_name"``.
Identity = tuple[str, str]


class RequestError(Exception):
    """A request-level error: nothing in the request is processed.

    :param status: the HTTP status to answer with.
    :param message: Braze's ``message``.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class TrackObject:
    """A valid ``/users/track`` object, ready to apply.

    :param array: ``attributes``, ``events`` or ``purchases``.
    :param index: position in its array.
    :param identity: who it is about.
    :param update_existing_only: the object's ``_update_existing_only`` (``None`` when absent).
    :param payload: attribute writes, or the normalised event/purchase record.
    """

    array: str
    index: int
    identity: Identity
    update_existing_only: bool | None
    payload: dict[str, Any]


@dataclass(slots=True)
class Recipient:
    """A valid recipient of ``/campaigns/trigger/send``.

    :param index: position in ``recipients``.
    :param identity: who it is (kind ``external_id`` for ``external_user_id``).
    :param identifier: the identifier as the client sent it, for the dispatch log.
    :param trigger_properties: the top-level properties merged with the recipient's own.
    :param send_to_existing_only: whether an unknown user is skipped.
    :param attributes: attribute writes applied before the send.
    """

    index: int
    identity: Identity
    identifier: dict[str, Any]
    trigger_properties: dict[str, Any]
    send_to_existing_only: bool
    attributes: dict[str, Any] | None


def minor_error(kind: str, array: str, index: int) -> dict[str, Any]:
    """One entry of a response's ``errors`` array.

    :param kind: what is wrong with the item.
    :param array: the input array the item came from.
    :param index: the item's position in that array.
    """
    return {"type": kind, "input_array": array, "index": index}


def parse_body(raw: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object.

    :param raw: the body bytes.
    :raises RequestError: 400 for anything that is not a JSON object.
    """
    return parse_body_counting_floats(raw)[0]


def parse_body_counting_floats(raw: bytes) -> tuple[dict[str, Any], int]:
    """Decode a request body that must be a JSON object, counting its floating-point literals.

    Re-serializing a decoded object makes it longer only through float literals (``1e15`` becomes
    ``1000000000000000.0``, at most 14 more characters each), so ``len(raw) + 14 * floats``
    bounds the serialized size of any part of the body.

    :param raw: the body bytes.
    :return: the body and how many float literals it has.
    :raises RequestError: 400 for anything that is not a JSON object.
    """
    floats = 0

    def parse_float(text: str) -> float:
        nonlocal floats
        floats += 1
        return float(text)

    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        body = json.JSONDecoder(parse_float=parse_float).decode(text)
    except (ValueError, RecursionError):
        raise RequestError(400, "Invalid JSON in request body") from None
    if type(body) is not dict:
        raise RequestError(400, f"The request body must be a JSON object, got {_json_type(body)}")
    return body, floats


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a " + type(value).__name__


def _alias_problem(alias: Any) -> str | None:
    if type(alias) is not dict:
        return "user_alias must be an object with alias_name and alias_label"
    for key in ("alias_name", "alias_label"):
        value = alias.get(key)
        if type(value) is not str or not value.strip():
            return f"user_alias.{key} must be a non-empty string"
        if len(value) > MAX_STRING_VALUE_LENGTH:
            return f"user_alias.{key} is longer than {MAX_STRING_VALUE_LENGTH} characters"
    return None


def _identity(kind: str, value: Any) -> Identity | str:
    """Check one identifier value; returns the identity or a problem."""
    if kind == "braze_id":
        problem = rules.braze_id_problem(value)
        return problem if problem else ("braze_id", value)
    if kind == "user_alias":
        problem = _alias_problem(value)
        return problem if problem else ("user_alias", f"{value['alias_label']}\x00{value['alias_name']}")
    if type(value) is not str or not value:
        return f"{kind} must be a non-empty string"
    if len(value) > MAX_STRING_VALUE_LENGTH:
        return f"{kind} is longer than {MAX_STRING_VALUE_LENGTH} characters"
    return ("external_id" if kind == "external_user_id" else kind, value)


def _track_identity(obj: dict[str, Any], *, attributes: bool) -> Identity | str:
    """Find the one identifier of a ``/users/track`` object.

    In an attribute object that has a primary id, ``email`` and ``phone`` are attribute values;
    without one, ``email`` identifies the user even when ``phone`` is present too.
    """
    primaries = ("external_id" in obj) + ("braze_id" in obj) + ("user_alias" in obj)
    if (
        primaries == 1
        and "external_id" in obj
        and (attributes or ("email" not in obj and "phone" not in obj))
    ):
        value = obj["external_id"]
        if type(value) is str and 0 < len(value) <= MAX_STRING_VALUE_LENGTH:
            return ("external_id", value)
        return _identity("external_id", value)
    primary = [k for k in _PRIMARY_KEYS if k in obj]
    if attributes and primary:
        found = primary
    else:
        # With both email and phone, Braze uses the email as the identifier (post_user_track.md).
        secondary = next((k for k in _SECONDARY_KEYS if k in obj), None)
        found = [*primary, secondary] if secondary else primary
    if not found:
        return "missing identifier: one of external_id, braze_id, user_alias, email or phone is required"
    if len(found) > 1:
        return f"multiple identifiers ({', '.join(found)}): exactly one is allowed"
    return _identity(found[0], obj[found[0]])


def _update_flag(obj: dict[str, Any]) -> bool | str | None:
    flag = obj.get("_update_existing_only")
    if flag is None or type(flag) is bool:
        return flag
    return "_update_existing_only must be true or false"


# Verdicts of the shared rules, memoised: names and scalar values repeat across the objects of a
# request and across requests. The rules stay in `braze.rules`; these caches only remember
# whether a given input passed. Bounded; races between threads only recompute a verdict.
_CACHE_LIMIT = 100_000
_NO_RESERVED: frozenset[str] = frozenset()
_NAME_VERDICTS: dict[frozenset[str], dict[str, bool]] = {}
_VALUE_VERDICTS: dict[type, dict[Any, bool]] = {str: {}, int: {}, float: {}, bool: {}, type(None): {}}
_TIME_CACHE: dict[str, datetime | None] = {}
# Names and scalar values that passed, for set look-ups. Equal scalars of different types (1, 1.0,
# True) share one entry: the value rules accept all of them alike.
_GOOD_NAMES: dict[frozenset[str], set[str]] = {}
_GOOD_VALUES: set[Any] = set()
_GOOD_EVENT_NAMES: set[str] = set()
_MISSING: Any = object()


def _remember_good(good: set[Any], value: Any) -> None:
    if len(good) >= _CACHE_LIMIT:
        good.clear()
    good.add(value)


def _remember(cache: dict[Any, Any], key: Any, verdict: Any) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = verdict


def _name_verdicts(reserved: frozenset[str]) -> dict[str, bool]:
    verdicts = _NAME_VERDICTS.get(reserved)
    if verdicts is None:
        verdicts = _NAME_VERDICTS.setdefault(reserved, {})
    return verdicts


def _name_ok(name: str, reserved: frozenset[str], what: str = "property") -> bool:
    """Whether :func:`rules.name_problem` accepts ``name`` (memoised).

    :param name: a string name.
    :param reserved: the names reserved in this position.
    :param what: what the name is.
    """
    verdicts = _name_verdicts(reserved)
    verdict = verdicts.get(name)
    if verdict is None:
        verdict = rules.name_problem(name, what=what, reserved=reserved) is None
        _remember(verdicts, name, verdict)
        if verdict:
            good = _GOOD_NAMES.get(reserved)
            if good is None or len(good) >= _CACHE_LIMIT:
                good = _GOOD_NAMES[reserved] = set()
            good.add(name)
    return verdict


def _value_ok(value: Any) -> bool:
    """Whether :func:`rules.value_problem` accepts ``value`` (memoised for scalars).

    :param value: a decoded JSON value.
    """
    verdicts = _VALUE_VERDICTS.get(type(value))
    if verdicts is None:
        return rules.value_problem(value) is None
    verdict = verdicts.get(value)
    if verdict is None:
        verdict = rules.value_problem(value) is None
        _remember(verdicts, value, verdict)
        if verdict:
            if len(_GOOD_VALUES) >= _CACHE_LIMIT:
                _GOOD_VALUES.clear()
            _GOOD_VALUES.add(value)
    return verdict


def _attribute_problem(key: Any, value: Any) -> str | None:
    if type(key) is not str or not _name_ok(key, _NO_RESERVED, "attribute"):
        return rules.name_problem(key, what="attribute")
    if not _value_ok(value):
        return rules.value_problem(value, where=f"attribute {key!r}")
    return None


def _full_properties_problem(props: Any, reserved: frozenset[str], max_bytes: int) -> str | None:
    try:
        return rules.properties_problem(props, max_bytes=max_bytes, reserved=reserved)
    except UnicodeEncodeError:
        return "property object contains text that is not valid Unicode (a lone surrogate)"


def _properties_problem(props: Any, reserved: frozenset[str], max_bytes: int, *, sized: bool) -> str | None:
    """Names and values of a properties object; its size too when ``sized``.

    Fast path: every key and scalar value already passed the shared rules before (two C-level
    set look-ups). Otherwise each key and value is asked of the same rule functions as
    :func:`rules.properties_problem`, and only when one fails is the full check run, for its message.
    """
    if type(props) is not dict:
        return _full_properties_problem(props, reserved, max_bytes)
    good_names = _GOOD_NAMES.get(reserved)
    try:
        known = (
            good_names is not None and props.keys() <= good_names and _GOOD_VALUES.issuperset(props.values())
        )
    except TypeError:  # an unhashable value (array or object): no fast path
        known = False
    if not known:
        for key, value in props.items():
            if not _name_ok(key, reserved) or not _value_ok(value):
                return _full_properties_problem(props, reserved, max_bytes)
    if sized:
        return _full_properties_problem(props, reserved, max_bytes)
    return None


def _oversized(objects: list[dict[str, Any]], max_bytes: int) -> bool:
    """Whether any of these properties objects may be over ``max_bytes``.

    One ASCII-escaped serialization of them all is at least as long in characters as the sum of
    their UTF-8 sizes, so when it fits no single object can be over the limit.
    """
    if not objects:
        return False
    return len(json.dumps(objects, separators=(",", ":"))) > max_bytes


def _parse_moment(value: str) -> datetime | None:
    moment = _TIME_CACHE.get(value, _MISSING)
    if moment is not _MISSING:
        return moment  # type: ignore[return-value]
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    try:
        parsed: datetime | None = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is not None:
        parsed = (
            parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
        )
    _remember(_TIME_CACHE, value, parsed)
    return parsed


def parse_time(value: Any, now: datetime) -> datetime | None:
    """Parse an event or purchase ``time`` (ISO 8601) into an aware UTC datetime.

    A time without zone is read as UTC; a time in the future becomes ``now``.

    :param value: the ``time`` field.
    :param now: the current time (UTC).
    :return: the normalised time, or ``None`` when unparseable.
    """
    if type(value) is not str or not value:
        return None
    moment = _parse_moment(value)
    if moment is None:
        return None
    return now if moment > now else moment


def _array(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if type(value) is not list:
        raise RequestError(400, f"'{name}' must be an array")
    return value


def validate_track(
    body: dict[str, Any], *, rule: ObjectCountRule, properties_max_bytes: int, size_bound: int | None = None
) -> tuple[list[TrackObject], list[dict[str, Any]], dict[str, int]]:
    """Validate a ``/users/track`` body.

    :param body: the decoded request body.
    :param rule: how objects are counted against ``Max Input Length Exceeded``.
    :param properties_max_bytes: largest event or purchase properties object.
    :param size_bound: an upper bound of the serialized size of any part of the body (see
        :func:`parse_body_counting_floats`); when it is within the limit, sizes are not measured.
    :return: the valid objects, the minor errors, and the size of each array sent.
    :raises RequestError: for request-level errors.
    """
    attributes = _array(body, "attributes")
    events = _array(body, "events")
    purchases = _array(body, "purchases")
    if "attributes" not in body and "events" not in body and "purchases" not in body:
        raise RequestError(400, "The request must contain attributes, events or purchases")
    if rule.exceeded(len(attributes), len(events), len(purchases)):
        raise RequestError(400, _MAX_INPUT)
    sizes: dict[str, int] = {
        name: len(_array(body, name)) for name in ("attributes", "events", "purchases") if name in body
    }
    now = datetime.now(timezone.utc)
    valid: list[TrackObject] = []
    errors: list[dict[str, Any]] = []
    for index, obj in enumerate(attributes):
        checked = _attribute_object(obj, index)
        if isinstance(checked, str):
            errors.append(minor_error(checked, "attributes", index))
        else:
            valid.append(checked)
    for array, items, reserved in (
        ("events", events, rules.RESERVED_EVENT_PROPERTY_NAMES),
        ("purchases", purchases, rules.RESERVED_PURCHASE_PROPERTY_NAMES),
    ):
        checked_items: list[TrackObject] = []
        for index, obj in enumerate(items):
            checked = _event_or_purchase(obj, array, index, now, reserved, properties_max_bytes)
            if isinstance(checked, str):
                errors.append(minor_error(checked, array, index))
            else:
                checked_items.append(checked)
        with_props = [o for o in checked_items if o.payload.get("properties")]
        if size_bound is not None and size_bound <= properties_max_bytes:
            with_props = []
        if _oversized([o.payload["properties"] for o in with_props], properties_max_bytes):
            too_big = set()
            for o in with_props:
                problem = _full_properties_problem(o.payload["properties"], reserved, properties_max_bytes)
                if problem:
                    errors.append(minor_error(problem, array, o.index))
                    too_big.add(o.index)
            checked_items = [o for o in checked_items if o.index not in too_big]
        valid.extend(checked_items)
    errors.sort(key=lambda e: (("attributes", "events", "purchases").index(e["input_array"]), e["index"]))
    return valid, errors, sizes


def _attribute_object(obj: Any, index: int) -> TrackObject | str:
    if type(obj) is not dict:
        return "attribute object must be a JSON object"
    identity = _track_identity(obj, attributes=True)
    if isinstance(identity, str):
        return identity
    flag = _update_flag(obj)
    if isinstance(flag, str):
        return flag
    writes: dict[str, Any] = {}
    secondary = identity[0] in _SECONDARY_KEYS
    for key, value in obj.items():
        if key in _NOT_WRITTEN or (secondary and key == identity[0]):
            continue
        problem = _attribute_problem(key, value)
        if problem:
            return problem
        writes[key] = value
    return TrackObject("attributes", index, identity, flag, writes)


def _event_or_purchase(
    obj: Any, array: str, index: int, now: datetime, reserved: frozenset[str], max_bytes: int
) -> TrackObject | str:
    what = "event" if array == "events" else "purchase"
    if type(obj) is not dict:
        return f"{what} object must be a JSON object"
    identity = _track_identity(obj, attributes=False)
    if type(identity) is str:
        return identity
    flag = obj.get("_update_existing_only")
    if flag is not None and type(flag) is not bool:
        return "_update_existing_only must be true or false"
    payload: dict[str, Any]
    if array == "events":
        name = obj.get("name")
        if name not in _GOOD_EVENT_NAMES:
            if name is None:
                return "event is missing 'name'"
            if type(name) is not str or not _name_ok(name, _NO_RESERVED, "event name"):
                return rules.name_problem(name, what="event name") or "invalid event name"
            _remember_good(_GOOD_EVENT_NAMES, name)
        payload = {"name": name}
    else:
        purchase = _purchase_fields(obj)
        if isinstance(purchase, str):
            return purchase
        payload = purchase
    text = obj.get("time")
    moment = _TIME_CACHE.get(text) if type(text) is str else None
    if moment is None:
        if "time" not in obj:
            return f"{what} is missing 'time'"
        moment = parse_time(text, now)
        if moment is None:
            return f"{what} 'time' {str(text)[:40]!r} is not an ISO 8601 time"
    payload["time"] = now if moment > now else moment
    props = obj.get("properties")
    if props is not None:
        problem = _properties_problem(props, reserved, max_bytes, sized=False)
        if problem:
            return problem
        payload["properties"] = props
    app_id = obj.get("app_id")
    if app_id is not None:
        if type(app_id) is not str:
            return "app_id must be a string"
        payload["app_id"] = app_id
    return TrackObject(array, index, identity, flag, payload)  # type: ignore[arg-type]


def _purchase_fields(obj: dict[str, Any]) -> dict[str, Any] | str:
    product_id = obj.get("product_id")
    if product_id is None:
        return "purchase is missing 'product_id'"
    problem = rules.name_problem(product_id, what="product_id")
    if problem:
        return problem
    currency = obj.get("currency")
    if type(currency) is not str or len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        return "purchase 'currency' must be a three-letter ISO 4217 code such as USD"
    price = obj.get("price")
    if (type(price) is not int and type(price) is not float) or not math.isfinite(price):
        return "purchase 'price' must be a number"
    quantity = obj.get("quantity", 1)
    if type(quantity) is not int or not 1 <= quantity <= 100:
        return "purchase 'quantity' must be an integer from 1 to 100"
    return {"product_id": product_id, "currency": currency, "price": price, "quantity": quantity}


def validate_campaign_and_send_id(body: dict[str, Any]) -> tuple[str, str | None]:
    """Check the ``campaign_id`` and optional ``send_id`` of a campaign request.

    :param body: the decoded request body.
    :return: the campaign id and the send id (``None`` when absent).
    :raises RequestError: 400 for a missing or invalid ``campaign_id`` or an invalid ``send_id``.
    """
    campaign_id = body.get("campaign_id")
    if campaign_id is None:
        raise RequestError(400, "Missing campaign_id")
    if type(campaign_id) is not str or not campaign_id.strip():
        raise RequestError(400, "campaign_id must be a non-empty string")
    send_id = body.get("send_id")
    if send_id is not None:
        problem = send_id_problem(send_id)
        if problem:
            raise RequestError(400, problem)
    return campaign_id, send_id


def validate_trigger(
    body: dict[str, Any], *, properties_max_bytes: int
) -> tuple[list[Recipient], list[dict[str, Any]], dict[str, Any]]:
    """Validate a ``/campaigns/trigger/send`` body.

    :param body: the decoded request body.
    :param properties_max_bytes: largest ``trigger_properties`` object.
    :return: valid recipients (duplicates removed), minor errors, and the request fields
        (``campaign_id``, ``send_id``, ``broadcast``, ``audience``, ``duplicates``,
        ``trigger_properties``).
    :raises RequestError: for request-level errors.
    """
    campaign_id, send_id = validate_campaign_and_send_id(body)
    broadcast = body.get("broadcast", False)
    if type(broadcast) is not bool:
        raise RequestError(400, "broadcast must be true or false")
    top = body.get("trigger_properties")
    if top is None:
        top = {}
    else:
        problem = _properties_problem(top, frozenset(), properties_max_bytes, sized=True)
        if problem:
            raise RequestError(400, f"Invalid trigger_properties: {problem}")
    recipients = body.get("recipients")
    if broadcast and recipients is not None:
        raise RequestError(400, "recipients must be omitted when broadcast is true")
    if recipients is None:
        if not broadcast and body.get("audience") is None:
            raise RequestError(400, "Either recipients, audience or broadcast must be given")
        recipients = []
    if type(recipients) is not list:
        raise RequestError(400, "recipients must be an array")
    if len(recipients) > TRIGGER_MAX_RECIPIENTS:
        raise RequestError(400, _TOO_MANY_RECIPIENTS)
    valid: list[Recipient] = []
    errors: list[dict[str, Any]] = []
    seen: set[Identity] = set()
    duplicates = 0
    for index, raw in enumerate(recipients):
        checked = _recipient(raw, index, top, properties_max_bytes)
        if isinstance(checked, str):
            errors.append(minor_error(checked, "recipients", index))
        elif checked.identity in seen:
            duplicates += 1
        else:
            seen.add(checked.identity)
            valid.append(checked)
    fields = {
        "campaign_id": campaign_id,
        "send_id": send_id,
        "broadcast": broadcast,
        "audience": body.get("audience"),
        "duplicates": duplicates,
        "trigger_properties": top,
    }
    return valid, errors, fields


def _recipient(raw: Any, index: int, top: dict[str, Any], max_bytes: int) -> Recipient | str:
    if type(raw) is not dict:
        return "recipient must be a JSON object"
    found = [k for k in RECIPIENT_IDENTIFIER_KEYS if k in raw]
    if not found:
        return "missing identifier: one of external_user_id, braze_id, user_alias or email is required"
    if len(found) > 1:
        return f"multiple identifiers ({', '.join(found)}): exactly one is allowed"
    kind = found[0]
    identity = _identity(kind, raw[kind])
    if isinstance(identity, str):
        return identity
    if kind == "email":
        prioritization = raw.get("prioritization")
        if type(prioritization) is not list or not prioritization:
            return "a recipient identified by email needs a 'prioritization' array"
    own = raw.get("trigger_properties")
    merged = top
    if own is not None:
        problem = _properties_problem(own, frozenset(), max_bytes, sized=True)
        if problem:
            return f"Invalid trigger_properties: {problem}"
        merged = {**top, **own}
    existing_only = raw.get("send_to_existing_only", True)
    if type(existing_only) is not bool:
        return "send_to_existing_only must be true or false"
    attributes = raw.get("attributes")
    if attributes is not None:
        if type(attributes) is not dict:
            return "attributes must be a JSON object"
        for key, value in attributes.items():
            problem = _attribute_problem(key, value)
            if problem:
                return problem
    elif not existing_only:
        return "send_to_existing_only false requires 'attributes'"
    return Recipient(index, identity, {kind: raw[kind]}, merged, existing_only, attributes)


def send_id_problem(send_id: Any) -> str | None:
    """Check a ``send_id``: ASCII, non-empty, at most 64 characters.

    :param send_id: the value to check.
    """
    if type(send_id) is not str or not send_id:
        return "send_id must be a non-empty string"
    if not send_id.isascii():
        return "send_id must be ASCII"
    if len(send_id) > SEND_ID_MAX_LENGTH:
        return f"send_id is {len(send_id)} characters long (Braze allows at most {SEND_ID_MAX_LENGTH})"
    return None


def validate_export(body: dict[str, Any]) -> tuple[list[Identity], list[str], list[str] | None]:
    """Validate a ``/users/export/ids`` body.

    :param body: the decoded request body.
    :return: the identities asked for, the raw ids in order (for ``invalid_user_ids``), and
        ``fields_to_export`` (``None``: every field).
    :raises RequestError: for request-level errors.
    """
    wanted: list[Identity] = []
    raw_ids: list[str] = []
    for key, kind in (("external_ids", "external_id"), ("braze_ids", "braze_id")):
        values = body.get(key)
        if values is None:
            continue
        if type(values) is not list or any(type(v) is not str for v in values):
            raise RequestError(400, f"{key} must be an array of strings")
        wanted.extend((kind, v) for v in values)
        raw_ids.extend(values)
    aliases = body.get("user_aliases")
    if aliases is not None:
        if type(aliases) is not list:
            raise RequestError(400, "user_aliases must be an array")
        for alias in aliases:
            identity = _identity("user_alias", alias)
            if isinstance(identity, str):
                raise RequestError(400, identity)
            wanted.append(identity)
            raw_ids.append(identity[1].split("\x00", 1)[1])
    email = body.get("email_address")
    if email is not None:
        if type(email) is not str:
            raise RequestError(400, "email_address must be a string")
        wanted.append(("email", email))
        raw_ids.append(email)
    if not wanted:
        raise RequestError(400, "Provide external_ids, braze_ids, user_aliases or email_address")
    if len(wanted) > EXPORT_MAX_IDS:
        raise RequestError(400, f"At most {EXPORT_MAX_IDS} identifiers can be exported per request")
    fields = body.get("fields_to_export")
    if fields is not None and (type(fields) is not list or any(type(f) is not str for f in fields)):
        raise RequestError(400, "fields_to_export must be an array of strings")
    return wanted, raw_ids, fields

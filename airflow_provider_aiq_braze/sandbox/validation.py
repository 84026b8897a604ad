"""Request validation for the sandbox: pure functions, no state, no locks.

Request-level problems raise :class:`RequestError` (nothing is processed); object-level problems
become "minor errors" ``{"type", "input_array", "index"}`` while the valid objects go on to be
applied. When a request names objects and none of them is valid, the request is refused whole:
``400`` carrying the same minor errors, as live Braze answers
(:data:`~airflow_provider_aiq_braze.sandbox.facts.NO_VALID_DATA`). The rules come from
:mod:`~airflow_provider_aiq_braze.sandbox.facts` and :mod:`~airflow_provider_aiq_braze.sandbox.checks`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_aiq_braze.sandbox import checks, facts
from airflow_provider_aiq_braze.sandbox.checks import Identity
from airflow_provider_aiq_braze.sandbox.config import Refusals

_PRIMARY = ("external_id", "braze_id", "user_alias")
_SECONDARY = ("email", "phone")
#: Keys of an attribute object that are never written as attributes.
_NOT_WRITTEN = frozenset({*_PRIMARY, "_update_existing_only", "push_token_import"})
_ARRAYS = ("attributes", "events", "purchases")
_NO_RESERVED: frozenset[str] = frozenset()
#: Identifier fields of a recipient (braze-docs:_docs/_api/objects_filters/recipient_object.md).
RECIPIENT_IDENTIFIERS = ("external_user_id", "user_alias", "braze_id", "email")


class RequestError(Exception):
    """A request-level error: nothing in the request is processed.

    :param status: the HTTP status to answer with.
    :param message: Braze's ``message``.
    :param errors: the minor errors that made the whole request invalid, if any.
    """

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        """The JSON answer: ``{"message"}``, with ``errors`` when there are any."""
        return {"message": self.message, "errors": self.errors} if self.errors else {"message": self.message}


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
    """One entry of a response's ``errors`` array, in the shape live Braze gives
    (rudder-transformer:test/integrations/destinations/braze/dataDelivery/business.ts).

    :param kind: what is wrong with the item.
    :param array: the input array the item came from.
    :param index: the item's position in that array.
    """
    return {"type": kind, "input_array": array, "index": index}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def parse_body(raw: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object (strict JSON: no ``NaN``/``Infinity``).

    :param raw: the body bytes.
    :raises RequestError: 400 for anything that is not a JSON object ("Bad syntax", errors.md).
    """
    try:
        body = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (ValueError, RecursionError):
        raise RequestError(400, "Invalid JSON in request body") from None
    if type(body) is not dict:
        raise RequestError(400, "The request body must be a JSON object")
    return body


def _array(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if type(value) is not list:
        raise RequestError(400, f"'{name}' must be an array")
    return value


# ---------------------------------------------------------------------------------- /users/track


def validate_track(
    body: dict[str, Any], *, rule: facts.ObjectCountRule, properties_max_bytes: int, refusals: Refusals
) -> tuple[list[TrackObject], list[dict[str, Any]], dict[str, int]]:
    """Validate a ``/users/track`` body.

    :param body: the decoded request body.
    :param rule: how objects are counted against ``Max Input Length Exceeded``.
    :param properties_max_bytes: largest properties object holding arrays or objects.
    :param refusals: identifiers refused as Braze refuses identifiers it does not accept.
    :return: the valid objects (attributes, then events, then purchases: the order Braze processes
        them, api_limits.md), the minor errors, and the valid objects per array (only arrays with
        at least one: live Braze leaves out ``purchases_processed`` when no purchase was valid).
    :raises RequestError: for request-level errors, and ``400`` with the minor errors when the
        request has no valid object.
    """
    arrays = {name: _array(body, name) for name in _ARRAYS}
    if rule.exceeded(*(len(arrays[name]) for name in _ARRAYS)):
        raise RequestError(400, facts.MAX_INPUT)
    now = datetime.now(timezone.utc)
    valid: list[TrackObject] = []
    errors: list[dict[str, Any]] = []
    processed: dict[str, int] = {}
    fast = not refusals.active
    for array, items in arrays.items():
        count = 0
        for index, obj in enumerate(items):
            checked: TrackObject | str | None = None
            if array == "attributes":
                checked = _attribute_object(obj, index, refusals)
            elif fast and array == "events":
                checked = _common_event(obj, index, now)
            if checked is None:
                checked = _event_or_purchase(obj, array, index, now, properties_max_bytes, refusals)
            if type(checked) is str:
                errors.append(minor_error(checked, array, index))
            else:
                valid.append(checked)  # type: ignore[arg-type]
                count += 1
        if count:
            processed[array] = count
    if not valid:
        # Also for a request naming no object at all: it provides no valid data (sandbox choice,
        # from the wording of Braze's message; Braze documents no other answer for it).
        raise RequestError(400, facts.NO_VALID_DATA, errors)
    return valid, errors, processed


def _track_identity(obj: dict[str, Any], *, attributes: bool, refusals: Refusals) -> Identity | str:
    """The identity of a ``/users/track`` object, or its minor error.

    One of ``external_id``, ``braze_id``, ``user_alias``, ``email``, ``phone`` is required
    (post_user_track.md). "Some identifier pairs cannot be used together in a single request. When
    both email and phone are given, email takes precedence" (event_object.md, current version): the
    sandbox refuses two primary ids, and on events and purchases a primary id with ``email`` or
    ``phone`` (sandbox choice: the stricter reading of "some pairs", the identifier-resolution table
    itself not being quoted anywhere). On an attribute object with a primary id, ``email`` and
    ``phone`` are profile fields (user_attributes_object.md).
    """
    external_id = obj.get("external_id")
    if (
        type(external_id) is str
        and external_id
        and "braze_id" not in obj
        and "user_alias" not in obj
        and (attributes or ("email" not in obj and "phone" not in obj))
    ):
        identity: Identity | str = ("external_id", external_id)
    else:
        found = [key for key in _PRIMARY if key in obj]
        if not attributes or not found:
            secondary = next((key for key in _SECONDARY if key in obj), None)
            found += [secondary] if secondary else []
        if not found:
            return facts.MISSING_IDENTIFIER
        if len(found) > 1:
            return facts.only_one_of(found)
        identity = checks.identity_of(found[0], obj[found[0]])
        if type(identity) is str:
            return identity
    if refusals.active and refusals.refuses(checks.identity_value(identity)):  # type: ignore[arg-type]
        return facts.REFUSED_IDENTIFIER.format(kind=identity[0])
    return identity


def _update_flag(obj: dict[str, Any]) -> bool | str | None:
    flag = obj.get("_update_existing_only")
    if flag is None or type(flag) is bool:
        return flag
    return facts.not_valid("_update_existing_only")


def attribute_problem(key: Any, value: Any) -> str | None:
    """Check one attribute write: a custom attribute name and value, or a profile field.

    ``email`` must pass Braze's email validation (email_validation.md; a ``null`` or empty value
    removes it). Other profile fields are not format-checked (sandbox choice).

    :param key: the attribute name.
    :param value: its value.
    """
    if not checks.name_ok(key):
        return facts.not_valid(str(key))
    if key == "email" and value and not checks.email_ok(value):
        return facts.INVALID_EMAIL
    if not checks.value_ok(value, attribute=True):
        return facts.not_valid(key)
    return None


def _attribute_object(obj: Any, index: int, refusals: Refusals) -> TrackObject | str:
    if type(obj) is not dict:
        return facts.MISSING_IDENTIFIER
    identity = _track_identity(obj, attributes=True, refusals=refusals)
    if type(identity) is str:
        return identity
    flag = _update_flag(obj)
    if type(flag) is str:
        return flag
    writes: dict[str, Any] = {}
    kind = identity[0]  # type: ignore[index]
    for key, value in obj.items():
        if key in _NOT_WRITTEN or key == kind:
            continue
        problem = attribute_problem(key, value)
        if problem:
            return problem
        writes[key] = value
    return TrackObject("attributes", index, identity, flag, writes)  # type: ignore[arg-type]


_COMMON_EVENT_KEYS = frozenset({"external_id", "name", "time", "properties", "app_id"})
_GOOD_EVENT_NAMES: set[str] = set()
# The memos of checks.py, read directly in the hot loop (a function call per event costs more
# than the look-up itself). Every entry was put there by the full checks.
_TIMES = checks.TIMES
_GOOD_SCALARS = checks.GOOD_SCALARS
_KNOWN_EVENT_PROPERTIES = checks.good_names(facts.RESERVED_EVENT_PROPERTIES)


def _common_event(obj: Any, index: int, now: datetime) -> TrackObject | None:
    """The common event, accepted in a few look-ups; ``None`` sends it to the full checks.

    Common: only ``external_id``, ``name``, ``time``, ``properties``, ``app_id``; an
    ``external_id`` that is a non-empty string; a name, a time and property names and scalar values
    that already passed the full checks (memoised). Whatever else goes through
    :func:`_event_or_purchase`, which gives the verdict and the minor error.
    """
    if type(obj) is not dict or not obj.keys() <= _COMMON_EVENT_KEYS:
        return None
    get = obj.get
    external_id, name, text = get("external_id"), get("name"), get("time")
    if type(external_id) is not str or not external_id or type(name) is not str or type(text) is not str:
        return None
    moment = _TIMES.get(text)
    if moment is None or name not in _GOOD_EVENT_NAMES:
        return None
    payload: dict[str, Any] = {"name": name, "time": now if moment > now else moment}
    props = get("properties")
    if props is not None:
        try:
            if type(props) is not dict or not (
                props.keys() <= _KNOWN_EVENT_PROPERTIES and _GOOD_SCALARS.issuperset(props.values())
            ):
                return None
        except TypeError:  # an array or an object among the values
            return None
        payload["properties"] = props
    app_id = get("app_id")
    if app_id is not None:
        if type(app_id) is not str:
            return None
        payload["app_id"] = app_id
    return TrackObject("events", index, ("external_id", external_id), None, payload)


def _event_or_purchase(
    obj: Any, array: str, index: int, now: datetime, max_bytes: int, refusals: Refusals
) -> TrackObject | str:
    if type(obj) is not dict:
        return facts.MISSING_IDENTIFIER
    identity = _track_identity(obj, attributes=False, refusals=refusals)
    if type(identity) is str:
        return identity
    flag = _update_flag(obj)
    if type(flag) is str:
        return flag
    if array == "events":
        # "name": (required, string) the name of the event (event_object.md); 255 characters.
        name = obj.get("name")
        if name is None:
            return facts.required("name")
        if type(name) is not str or not 0 < len(name) <= facts.MAX_NAME_LENGTH or name.isspace():
            return facts.not_valid("name")
        if len(_GOOD_EVENT_NAMES) >= 100_000:
            _GOOD_EVENT_NAMES.clear()
        _GOOD_EVENT_NAMES.add(name)
        payload: dict[str, Any] = {"name": name}
        reserved = facts.RESERVED_EVENT_PROPERTIES
    else:
        purchase = _purchase_fields(obj)
        if type(purchase) is str:
            return purchase
        payload = purchase  # type: ignore[assignment]
        reserved = facts.RESERVED_PURCHASE_PROPERTIES
    if "time" not in obj:
        return facts.required("time")
    moment = checks.parse_time(obj["time"])
    if moment is None:
        return facts.not_valid("time")
    payload["time"] = now if moment > now else moment
    props = obj.get("properties")
    if props is not None:
        problem = checks.properties_problem(props, reserved, max_bytes)
        if problem:
            return problem
        payload["properties"] = props
    app_id = obj.get("app_id")
    if app_id is not None:
        if type(app_id) is not str:
            return facts.not_valid("app_id")
        payload["app_id"] = app_id
    return TrackObject(array, index, identity, flag, payload)  # type: ignore[arg-type]


def _purchase_fields(obj: dict[str, Any]) -> dict[str, Any] | str:
    """``product_id`` (string, up to 255 characters), ``currency`` (ISO 4217 alphabetic code),
    ``price`` (number), ``quantity`` (integer, defaults to 1, at most 100; "Braze treats a quantity X
    as X separate purchases"), braze-docs:_docs/_api/objects_filters/purchase_object.md."""
    product_id = obj.get("product_id")
    if product_id is None:
        return facts.required("product_id")
    if type(product_id) is not str or not 0 < len(product_id) <= facts.MAX_PRODUCT_ID_LENGTH:
        return facts.not_valid("product_id")
    currency = obj.get("currency")
    if currency is None:
        return facts.required("currency")
    if type(currency) is not str or len(currency) != 3 or not (currency.isascii() and currency.isupper()):
        return facts.not_valid("currency")
    price = obj.get("price")
    if price is None:
        return facts.required("price")
    if type(price) is not int and type(price) is not float:
        return facts.not_valid("price")
    quantity = obj.get("quantity", 1)
    if type(quantity) is not int or not 1 <= quantity <= 100:
        return facts.INVALID_QUANTITY
    return {"product_id": product_id, "currency": currency, "price": price, "quantity": quantity}


# ------------------------------------------------------------------------ campaigns and send ids


def validate_campaign_and_send_id(
    body: dict[str, Any], campaigns: tuple[str, ...] = ()
) -> tuple[str, str | None]:
    """Check the ``campaign_id`` and optional ``send_id`` of a campaign request.

    :param body: the decoded request body.
    :param campaigns: the workspace's campaign ids (empty: any id is accepted).
    :return: the campaign id and the send id (``None`` when absent).
    :raises RequestError: ``400 Invalid Campaign ID`` for a missing or unknown ``campaign_id``
        ("No Messaging API Campaign was found for the campaign ID you provided", errors.md), 400
        for an invalid ``send_id``.
    """
    campaign_id = body.get("campaign_id")
    if (
        type(campaign_id) is not str
        or not campaign_id.strip()
        or (campaigns and campaign_id not in campaigns)
    ):
        raise RequestError(400, facts.INVALID_CAMPAIGN_ID)
    send_id = body.get("send_id")
    if send_id is not None:
        problem = send_id_problem(send_id)
        if problem:
            raise RequestError(400, problem)
    return campaign_id, send_id


def send_id_problem(send_id: Any) -> str | None:
    """Check a ``send_id``: ASCII, non-empty, at most 64 characters (identifier_types.md).

    :param send_id: the value to check.
    """
    if type(send_id) is not str or not send_id:
        return "send_id must be a non-empty string"
    if not send_id.isascii():
        return "send_id must be ASCII"
    if len(send_id) > facts.SEND_ID_MAX_LENGTH:
        return f"send_id is {len(send_id)} characters long (Braze allows at most {facts.SEND_ID_MAX_LENGTH})"
    return None


def validate_trigger(
    body: dict[str, Any], *, properties_max_bytes: int, refusals: Refusals, campaigns: tuple[str, ...] = ()
) -> tuple[list[Recipient], list[dict[str, Any]], dict[str, Any]]:
    """Validate a ``/campaigns/trigger/send`` body (post_send_triggered_campaigns.md).

    :param body: the decoded request body.
    :param properties_max_bytes: largest ``trigger_properties`` holding arrays or objects.
    :param refusals: identifiers refused as Braze refuses identifiers it does not accept.
    :param campaigns: the workspace's campaign ids (empty: any id is accepted).
    :return: valid recipients (duplicates removed), minor errors, and the request fields
        (``campaign_id``, ``send_id``, ``broadcast``, ``audience``, ``duplicates``,
        ``trigger_properties``).
    :raises RequestError: for request-level errors; ``400 No Recipients`` (errors.md) with the
        minor errors when recipients were given and none is valid.
    """
    campaign_id, send_id = validate_campaign_and_send_id(body, campaigns)
    broadcast = body.get("broadcast", False)
    if type(broadcast) is not bool:
        raise RequestError(400, "'broadcast' must be true or false")
    top = body.get("trigger_properties")
    if top is None:
        top = {}
    else:
        problem = checks.properties_problem(top, _NO_RESERVED, properties_max_bytes, "trigger_properties")
        if problem:
            raise RequestError(400, problem)
    recipients = body.get("recipients")
    if broadcast and recipients is not None:
        # "If broadcast is set to true, a recipients list cannot be included."
        raise RequestError(400, "'recipients' cannot be included when 'broadcast' is true")
    audience = body.get("audience")
    if recipients is None:
        if not broadcast and audience is None:
            raise RequestError(400, facts.NO_RECIPIENTS)
        recipients = []
    elif type(recipients) is not list:
        raise RequestError(400, "'recipients' must be an array")
    elif len(recipients) > facts.TRIGGER_MAX_RECIPIENTS:
        raise RequestError(400, facts.TOO_MANY_RECIPIENTS)
    elif not recipients and audience is None:
        raise RequestError(400, facts.NO_RECIPIENTS)
    valid: list[Recipient] = []
    errors: list[dict[str, Any]] = []
    seen: set[Identity] = set()
    duplicates = 0
    for index, raw in enumerate(recipients):
        checked = _recipient(raw, index, top, properties_max_bytes, refusals)
        if type(checked) is str:
            errors.append(minor_error(checked, "recipients", index))
        elif checked.identity in seen:  # type: ignore[union-attr]
            duplicates += 1  # "the user will be deduped" (recipient_object.md)
        else:
            seen.add(checked.identity)  # type: ignore[union-attr]
            valid.append(checked)  # type: ignore[arg-type]
    if recipients and not valid:
        raise RequestError(400, facts.NO_RECIPIENTS, errors)
    fields = {
        "campaign_id": campaign_id,
        "send_id": send_id,
        "broadcast": broadcast,
        "audience": audience,
        "duplicates": duplicates,
        "trigger_properties": top,
    }
    return valid, errors, fields


def _recipient(
    raw: Any, index: int, top: dict[str, Any], max_bytes: int, refusals: Refusals
) -> Recipient | str:
    """One recipient: exactly one of ``external_user_id``, ``user_alias``, ``braze_id``, ``email``
    ("Requests must specify only one"), ``email`` with a ``prioritization`` array, optional
    ``trigger_properties`` (override the parent's), ``send_to_existing_only`` (default true; false
    requires ``attributes``) and ``attributes`` (recipient_object.md, post_send_triggered_campaigns.md).
    """
    if type(raw) is not dict:
        return facts.MISSING_RECIPIENT_IDENTIFIER
    found = [key for key in RECIPIENT_IDENTIFIERS if key in raw]
    if not found:
        return facts.MISSING_RECIPIENT_IDENTIFIER
    if len(found) > 1:
        return facts.only_one_of(found)
    kind = found[0]
    identity = checks.identity_of(kind, raw[kind])
    if type(identity) is str:
        return identity
    if refusals.active and refusals.refuses(checks.identity_value(identity)):  # type: ignore[arg-type]
        return facts.REFUSED_IDENTIFIER.format(kind=kind)
    if kind == "email":
        prioritization = raw.get("prioritization")
        if type(prioritization) is not list or not prioritization:
            return facts.required("prioritization")
    own = raw.get("trigger_properties")
    merged = top
    if own is not None:
        problem = checks.properties_problem(own, _NO_RESERVED, max_bytes, "trigger_properties")
        if problem:
            return problem
        merged = {**top, **own}
    existing_only = raw.get("send_to_existing_only", True)
    if type(existing_only) is not bool:
        return facts.not_valid("send_to_existing_only")
    attributes = raw.get("attributes")
    if attributes is not None:
        if type(attributes) is not dict:
            return facts.not_valid("attributes")
        for key, value in attributes.items():
            problem = attribute_problem(key, value)
            if problem:
                return problem
    elif not existing_only:
        return facts.required("attributes")
    return Recipient(index, identity, {kind: raw[kind]}, merged, existing_only, attributes)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ /users/export/ids


def validate_export(body: dict[str, Any]) -> tuple[list[Identity], list[str], list[str] | None]:
    """Validate a ``/users/export/ids`` body (post_users_identifier.md): ``external_ids`` and
    ``user_aliases`` (up to 50 together), ``braze_id``, ``device_id``, ``email_address``, ``phone``
    (strings), ``fields_to_export`` (array of strings).

    :param body: the decoded request body.
    :return: the identities asked for, the raw ids in order (for ``invalid_user_ids``), and
        ``fields_to_export`` (``None``: every field).
    :raises RequestError: for request-level errors.
    """
    wanted: list[Identity] = []
    raw_ids: list[str] = []
    external_ids = body.get("external_ids")
    if external_ids is not None:
        if type(external_ids) is not list or any(type(v) is not str for v in external_ids):
            raise RequestError(400, "'external_ids' must be an array of strings")
        wanted.extend(("external_id", v) for v in external_ids)
        raw_ids.extend(external_ids)
    aliases = body.get("user_aliases")
    if aliases is not None:
        if type(aliases) is not list:
            raise RequestError(400, "'user_aliases' must be an array of user alias objects")
        for alias in aliases:
            identity = checks.alias_identity(alias)
            if identity is None:
                raise RequestError(400, "'user_aliases' must be an array of user alias objects")
            wanted.append(identity)
            raw_ids.append(alias["alias_name"])
    if len(wanted) > facts.EXPORT_MAX_IDS:
        raise RequestError(400, facts.TOO_MANY_IDS)
    for key, kind in (
        ("braze_id", "braze_id"),
        ("device_id", "device_id"),
        ("email_address", "email"),
        ("phone", "phone"),
    ):
        value = body.get(key)
        if value is None:
            continue
        if type(value) is not str:
            raise RequestError(400, f"'{key}' must be a string")
        wanted.append((kind, value))
        raw_ids.append(value)
    if not wanted:
        raise RequestError(
            400, "Provide external_ids, user_aliases, braze_id, device_id, email_address or phone"
        )
    fields = body.get("fields_to_export")
    if fields is not None and (type(fields) is not list or any(type(f) is not str for f in fields)):
        raise RequestError(400, "'fields_to_export' must be an array of strings")
    return wanted, raw_ids, fields

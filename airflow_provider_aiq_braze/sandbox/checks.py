"""The sandbox's checks of single names, values and identifiers, written from Braze's documents.

Each check returns ``None`` when Braze accepts the input, or the minor error Braze answers. Verdicts
of names, scalar values, times and emails are memoised: they repeat across the objects of a request
and across requests (this is where the sandbox spends most of its time). Sources are in
:mod:`airflow_provider_aiq_braze.sandbox.facts` and next to each rule.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from airflow_provider_aiq_braze.sandbox import facts

#: ``(kind, value)``; ``kind`` is ``external_id``, ``braze_id``, ``user_alias``, ``email`` or
#: ``phone``; the value of a ``user_alias`` is ``"alias_label\x00alias_name"``.
Identity = tuple[str, str]

_CACHE_LIMIT = 100_000
_MISSING: Any = object()
_SCALARS = (str, int, float, bool, type(None))


def _remember(cache: dict[Any, Any], key: Any, verdict: Any) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = verdict


# ------------------------------------------------------------------------------------ names


def name_ok(name: Any) -> bool:
    """A property or custom attribute name Braze accepts: a non-empty string of at most 255
    characters that does not start with ``$`` (braze-docs:_docs/_api/objects_filters/event_object.md
    "Event properties object"; user_attributes_object.md; digest "Custom attributes": keys trimmed).

    :param name: the name.
    """
    return (
        type(name) is str and 0 < len(name) <= facts.MAX_NAME_LENGTH and name[0] != "$" and not name.isspace()
    )


_GOOD_NAMES: dict[frozenset[str], set[str]] = {}


def good_names(reserved: frozenset[str]) -> set[str]:
    """The names already accepted where ``reserved`` names are refused (a memo, for set look-ups).

    :param reserved: the names Braze reserves in this position.
    """
    found = _GOOD_NAMES.get(reserved)
    if found is None:
        found = _GOOD_NAMES[reserved] = set()
    elif len(found) >= _CACHE_LIMIT:
        found.clear()  # in place: callers may hold the set
    return found


def property_name_problem(name: Any, reserved: frozenset[str]) -> str | None:
    """Check an event, purchase or trigger property name.

    :param name: the name.
    :param reserved: the names reserved in this position (:data:`facts.RESERVED_EVENT_PROPERTIES`…).
    """
    known = good_names(reserved)
    if name in known:
        return None
    if not name_ok(name) or name in reserved:
        return facts.not_valid(str(name))
    known.add(name)
    return None


# ----------------------------------------------------------------------------------- values

#: Scalar values already accepted (strings of at most 255 characters, numbers, booleans, null).
#: Equal scalars of different types (``1``, ``1.0``, ``True``) share one entry: all are accepted.
GOOD_SCALARS: set[Any] = set()


def _scalar_ok(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        # "Strings: 255 characters or fewer" (event_object.md); custom attribute values: 255.
        return len(value) <= facts.MAX_STRING_LENGTH
    # Numbers, booleans and null; JSON with NaN or Infinity never gets here (refused as bad JSON).
    return kind is int or kind is float or kind is bool or value is None


def value_ok(value: Any, *, attribute: bool = False) -> bool:
    """Whether Braze accepts a property or attribute value, arrays and objects included.

    Property values: "Numbers, Booleans, Datetimes, Strings (255 characters or fewer), Arrays,
    Objects" (braze-docs:_docs/_api/objects_filters/event_object.md). Attribute values: the same
    types (braze-docs:_docs/_api/objects_filters/user_attributes_object.md "Custom attribute data
    types"), nested objects (nested custom attributes) and the documented operators
    (:data:`facts.ATTRIBUTE_OPERATOR_KEYS`). Braze documents no nesting depth: any depth the JSON
    decoder took is walked (iteratively, so no depth hits the interpreter's recursion limit).

    :param value: a decoded JSON value.
    :param attribute: check it as a custom attribute value (operator keys allowed).
    """
    pending = [value]
    while pending:
        item = pending.pop()
        try:
            if item in GOOD_SCALARS:
                continue
        except TypeError:  # an array or an object
            pass
        kind = type(item)
        if kind is list:
            pending.extend(item)
        elif kind is dict:
            for key in item:
                if not ((attribute and key in facts.ATTRIBUTE_OPERATOR_KEYS) or name_ok(key)):
                    return False
            pending.extend(item.values())
        elif _scalar_ok(item):
            if len(GOOD_SCALARS) >= _CACHE_LIMIT:
                GOOD_SCALARS.clear()
            GOOD_SCALARS.add(item)
        else:
            return False
    return True


def properties_problem(
    props: Any, reserved: frozenset[str], max_bytes: int, field: str = "properties"
) -> str | None:
    """Check an event/purchase ``properties`` or a ``trigger_properties`` object.

    Names and values as :func:`property_name_problem` and :func:`value_ok`; the serialized size is
    bounded only when a value is an array or an object ("Event property objects that contain array
    or object values can have an event property payload of up to 50KB", event_object.md; 100 KB in
    the current pages: :data:`facts.PROPERTIES_MAX_BYTES`).

    :param props: the object.
    :param reserved: the property names reserved here.
    :param max_bytes: the largest payload of a property object holding arrays or objects.
    :param field: the field name used in the minor error.
    """
    if type(props) is not dict:
        return facts.not_valid(field)
    known = good_names(reserved)
    try:
        if props.keys() <= known and GOOD_SCALARS.issuperset(props.values()):
            return None  # the common case: known names, known scalar values, nothing nested
    except TypeError:  # an unhashable value (array or object): check each one
        pass
    nested = False
    for key, value in props.items():
        problem = property_name_problem(key, reserved)
        if problem:
            return problem
        if not value_ok(value):
            return facts.not_valid(f"{field}.{key}")
        nested = nested or type(value) is list or type(value) is dict
    if nested and payload_bytes(props) > max_bytes:
        return facts.not_valid(field)
    return None


def payload_bytes(value: Any) -> int:
    """The size of a value once serialized as compact UTF-8 JSON.

    :param value: a decoded JSON value.
    """
    try:
        return len(
            json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
        )
    except RecursionError:  # nested nearly as deep as the decoder allows: count without recursion
        return _payload_bytes_iteratively(value)


def _payload_bytes_iteratively(value: Any) -> int:
    size, pending = 0, [value]
    while pending:
        item = pending.pop()
        if type(item) is list:
            size += 2 + max(len(item) - 1, 0)  # brackets and commas
            pending.extend(item)
        elif type(item) is dict:
            size += 2 + max(len(item) - 1, 0) + len(item)  # braces, commas and colons
            pending.extend(item)  # the keys, as strings
            pending.extend(item.values())
        else:
            size += len(json.dumps(item, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return size


# ------------------------------------------------------------------------------------- times

TIMES: dict[str, datetime | None] = {}


def parse_time(value: Any) -> datetime | None:
    """Parse an event or purchase ``time``: "ISO 8601 or ``yyyy-MM-dd'T'HH:mm:ss:SSSZ``"
    (braze-docs:_docs/_api/objects_filters/event_object.md), into an aware UTC datetime.

    A time without zone is UTC ("Date attributes without a timezone will default to Midnight UTC",
    user_attributes_object.md). The caller moves future times to now ("Events and Attributes with
    timestamps in the future will default to the current time", same page).

    :param value: the ``time`` field.
    :return: the time, or ``None`` when it is not a time.
    """
    if type(value) is not str:
        return None
    moment = TIMES.get(value, _MISSING)
    if moment is not _MISSING:
        return moment  # type: ignore[no-any-return]
    try:
        parsed: datetime | None = datetime.fromisoformat(value) if value else None
    except ValueError:
        parsed = None
    if parsed is not None:
        parsed = (
            parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
        )
    _remember(TIMES, value, parsed)
    return parsed


# ------------------------------------------------------------------------------ identifiers

_EMAILS: dict[str, bool] = {}
#: Local part, all domains but Microsoft's: letters, numbers, ``_`` and ``-``, plus ``. + ' & # /``
#: inside (braze-docs:_docs/_user_guide/message_building_by_channel/email/email_setup/
#: email_validation.md, "Local part validation rules", regex written there with ``\p{L}\p{N}``).
_LOCAL_INNER = frozenset(".+'&#/")
#: Microsoft domains: ``/\A\w[\-\w]*(?:\.[\-\w]+)*\z/i`` on the part before ``+`` (same page).
_MICROSOFT_LOCAL = re.compile(r"\A\w[\-\w]*(?:\.[\-\w]+)*\Z", re.ASCII)
_MICROSOFT_HOSTS = ("msn", "hotmail", "outlook", "live")
#: Host part (same page): two or more labels of 1-63 letters, digits and inner hyphens.
_HOST = re.compile(r"\A[a-z\d](?:[a-z\d-]{0,61}[a-z\d])?(?:\.[a-z\d](?:[a-z\d-]{0,61}[a-z\d])?)+\Z", re.I)


def _local_ok(local: str) -> bool:
    if not local:
        return False

    def edge_ok(char: str) -> bool:
        return char.isalnum() or char in "_-"

    return (
        edge_ok(local[0])
        and edge_ok(local[-1])
        and all(c.isalnum() or c in "_-" or c in _LOCAL_INNER for c in local)
    )


def email_ok(email: Any) -> bool:
    """Whether Braze's email syntax validation accepts an address
    (braze-docs:_docs/_user_guide/message_building_by_channel/email/email_setup/email_validation.md:
    no whitespace, the local-part regexes, Gmail local parts of at least two characters, the host
    regex, no IP address host, a top-level domain that is not all digits; the ICANN list of
    top-level domains is not checked).

    :param email: the value given as ``email``.
    """
    if type(email) is not str:
        return False
    verdict = _EMAILS.get(email)
    if verdict is None:
        local, at, host = email.rpartition("@")
        verdict = bool(at) and _HOST.match(host) is not None and not host.rsplit(".", 1)[1].isdigit()
        if verdict:
            lowered = host.lower()
            if any(name in lowered for name in _MICROSOFT_HOSTS):
                verdict = _MICROSOFT_LOCAL.match(local.split("+", 1)[0]) is not None
            else:
                verdict = _local_ok(local) and not (lowered.startswith("gmail.") and len(local) < 2)
        _remember(_EMAILS, email, verdict)
    return verdict


#: A phone number used as identifier: E.164, a ``+`` and up to 15 digits (braze-docs:
#: _docs/_api/endpoints/export/user_data/post_users_identifier.md "String in E.164 format";
#: post_user_track.md "This endpoint only works if you include a valid phone number").
_E164 = re.compile(r"\A\+[1-9]\d{6,14}\Z")


def phone_ok(phone: Any) -> bool:
    """Whether a phone number used as identifier is in E.164 format.

    :param phone: the value given as ``phone``.
    """
    return type(phone) is str and _E164.match(phone) is not None


def alias_identity(alias: Any) -> Identity | None:
    """A ``user_alias`` identity: an object with non-empty string ``alias_name`` and ``alias_label``
    (braze-docs:_docs/_api/objects_filters/user_alias_object.md).

    :param alias: the ``user_alias`` value.
    :return: the identity, or ``None`` when the alias is not valid.
    """
    if type(alias) is not dict:
        return None
    name, label = alias.get("alias_name"), alias.get("alias_label")
    if type(name) is not str or type(label) is not str or not name or not label:
        return None
    return ("user_alias", f"{label}\x00{name}")


def identity_of(kind: str, value: Any) -> Identity | str:
    """The identity one identifier field names, or its minor error.

    ``external_id`` and ``braze_id`` are non-empty strings (braze-docs:_docs/_api/objects_filters/
    user_attributes_object.md; Braze documents no format for either: an unknown ``braze_id`` is
    simply not found); ``email`` and ``phone`` as :func:`email_ok` and :func:`phone_ok`.

    :param kind: the field (``external_user_id`` counts as ``external_id``).
    :param value: its value.
    """
    if kind == "user_alias":
        return alias_identity(value) or facts.not_valid("user_alias")
    if kind == "email":
        return ("email", value) if email_ok(value) else facts.INVALID_EMAIL
    if kind == "phone":
        return ("phone", value) if phone_ok(value) else facts.INVALID_PHONE
    if type(value) is not str or not value:
        return facts.not_valid(kind)
    return ("external_id" if kind == "external_user_id" else kind, value)


def identity_value(identity: Identity) -> str:
    """The value a refusal is matched against: the identifier, or the alias name of an alias.

    :param identity: a valid identity.
    """
    kind, value = identity
    return value.split("\x00", 1)[1] if kind == "user_alias" else value

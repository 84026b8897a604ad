"""Checks of the operators' and the hook's arguments, one function per kind of argument.

Each check returns the value to keep (normalised) or raises :class:`ArgumentError`, whose message
names the argument, shows what was given and says what is accepted. The operators call them in
their constructors for literal values and again once Airflow rendered their templated arguments
(:meth:`~airflow_provider_aiq_braze.operators.base.BrazeDeliveryOperator.check_arguments`), before
anything is read or sent.

One rule for text: a value given as text that spells an accepted value exactly (``"10"`` for a
whole number, ``"0.5"`` for a number, ``"true"``/``"false"`` for a flag, surrounding spaces
ignored) is read as that value, whether it was written literally or rendered by a template (a
template renders to text unless the DAG sets ``render_template_as_native_obj=True``). Any other
text is refused. See ``docs/operators.md``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Collection, Mapping
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.braze.rules import RESERVED_ATTRIBUTE_NAMES, name_problem
from airflow_provider_aiq_braze.contracts.errors import ContractError
from airflow_provider_aiq_braze.contracts.identifiers import IDENTIFIER_KINDS, NotAnIdentifier, identifier

_WHOLE_NUMBER = re.compile(r"\s*[+-]?[0-9]+\s*")
_TRUE_WORDS = frozenset({"true"})
_FALSE_WORDS = frozenset({"false"})


class ArgumentError(ContractError):
    """An argument of an operator or of the hook that cannot be used.

    :param name: the argument.
    :param given: the value given.
    :param accepted: what the argument accepts (completes "``name`` must be …").
    """

    def __init__(self, name: str, given: Any, accepted: str) -> None:
        super().__init__(f"{name} must be {accepted}; got {shown(given)}")
        self.argument = name


def shown(value: Any) -> str:
    """A value as an error message shows it: its ``repr`` cut to 100 characters, and its type.

    :param value: the value.
    """
    text = repr(value)
    if len(text) > 100:
        text = text[:100] + "…"
    if value is None or isinstance(value, bool | int | float | str):
        return text
    return f"{text} ({type(value).__name__})"


def is_template(value: Any) -> bool:
    """Whether a value is a Jinja template that Airflow renders before the task runs.

    :param value: an argument's value.
    """
    return isinstance(value, str) and ("{{" in value or "{%" in value)


# -- numbers and flags ---------------------------------------------------------------------------


def whole_number(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    """A whole number within bounds (an ``int``, or text spelling one).

    :param name: the argument.
    :param value: its value.
    :param minimum: the smallest accepted value.
    :param maximum: the largest accepted value, if any.
    """
    bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
    accepted = f"a whole number {bounds}"
    number: int | None = None
    spelled = isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value) is not None
    if (isinstance(value, int) and not isinstance(value, bool)) or spelled:
        number = int(value)
    if number is None or number < minimum or (maximum is not None and number > maximum):
        raise ArgumentError(name, value, accepted)
    return number


def number(name: str, value: Any, *, minimum: float, maximum: float | None = None) -> float:
    """A finite number within bounds (an ``int`` or ``float``, or text spelling one).

    :param name: the argument.
    :param value: its value.
    :param minimum: the smallest accepted value.
    :param maximum: the largest accepted value, if any.
    """
    bounds = f"from {minimum:g} to {maximum:g}" if maximum is not None else f"at least {minimum:g}"
    accepted = f"a number {bounds}"
    result: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            result = None
    if result is None or not math.isfinite(result):
        raise ArgumentError(name, value, accepted)
    if result < minimum or (maximum is not None and result > maximum):
        raise ArgumentError(name, value, accepted)
    return result


def flag(name: str, value: Any) -> bool:
    """A boolean (``True``/``False``, or the text ``"true"``/``"false"`` in any case).

    :param name: the argument.
    :param value: its value.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise ArgumentError(name, value, "True or False")


def choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """One value out of a fixed set.

    :param name: the argument.
    :param value: its value.
    :param choices: the accepted values.
    """
    for accepted in choices:
        # by type too: 0 is not False, 1.0 is not True
        if value is accepted or (type(value) is type(accepted) and value == accepted):
            return accepted
    raise ArgumentError(name, value, "one of " + ", ".join(repr(c) for c in choices))


# -- names, identifiers, paths --------------------------------------------------------------------


def text(name: str, value: Any, *, optional: bool = False, what: str = "non-empty text") -> str | None:
    """Non-empty text (a column name, a connection id, a namespace…).

    :param name: the argument.
    :param value: its value.
    :param optional: whether ``None`` is accepted.
    :param what: how the accepted value is described.
    """
    if value is None and optional:
        return None
    if isinstance(value, str) and value.strip():
        return value
    raise ArgumentError(name, value, what + (" or None" if optional else ""))


def column_name(name: str, value: Any, *, optional: bool = False) -> str | None:
    """A column name: non-empty text, taken as written (names are case-sensitive).

    :param name: the argument.
    :param value: its value.
    :param optional: whether ``None`` (no such column) is accepted.
    """
    return text(name, value, optional=optional, what="a column name (non-empty text)")


def column_names(
    name: str, value: Any, *, optional: bool = False, distinct: bool = False
) -> tuple[str, ...] | None:
    """A list of column names (a list or tuple; a single string is refused).

    :param name: the argument.
    :param value: its value.
    :param optional: whether ``None`` (the default set of columns) is accepted.
    :param distinct: whether a name may appear only once.
    """
    if value is None and optional:
        return None
    what = "distinct column names" if distinct else "column names"
    accepted = f"a list of {what}, e.g. ['plan', 'tier']" + (" or None" if optional else "")
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple):
        raise ArgumentError(name, value, accepted)
    names = tuple(value)
    if any(not isinstance(n, str) or not n.strip() for n in names):
        raise ArgumentError(name, value, accepted)
    if distinct and len(set(names)) != len(names):
        raise ArgumentError(name, value, accepted)
    return names


def identifier_preference(value: Any) -> tuple[str, ...]:
    """The identifier kinds a row may use, in order of preference.

    :param value: the ``identifier_preference`` argument.
    """
    kinds = ", ".join(repr(k) for k in IDENTIFIER_KINDS)
    accepted = f"a list of one or both of {kinds} without repeats, e.g. ['braze_id', 'external_id']"
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple):
        raise ArgumentError("identifier_preference", value, accepted)
    chosen = tuple(value)
    if (
        not chosen
        or len(set(map(repr, chosen))) != len(chosen)
        or any(k not in IDENTIFIER_KINDS for k in chosen)
    ):
        raise ArgumentError("identifier_preference", value, accepted)
    return chosen


def identifier_argument(name: str, value: Any, *, optional: bool = True) -> str | None:
    """An audience, split or campaign id given as an argument, read by the one identifier rule.

    :param name: the argument.
    :param value: its value (text, trimmed; or a whole number).
    :param optional: whether no value (``None`` or empty text) is accepted.
    """
    accepted = "text or a whole number" + (" (or None)" if optional else "")
    try:
        result = identifier(value, name)
    except NotAnIdentifier:
        raise ArgumentError(name, value, accepted) from None
    if result is None and not optional:
        raise ArgumentError(name, value, accepted)
    return result


def storage_path(name: str, value: Any, *, optional: bool = True) -> Any:
    """A path or URI on any storage (text, ``os.PathLike`` or an ``ObjectStoragePath``).

    :param name: the argument (``state_path``, ``rejects_path``).
    :param value: its value.
    :param optional: whether ``None`` (the default location) is accepted.
    """
    if optional and (value is None or (isinstance(value, str) and not value.strip())):
        return None  # no location given (an unset template renders to ""): the default applies
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, os.PathLike | ObjectStoragePath):
        return value
    raise ArgumentError(
        name,
        value,
        "a path or URI (e.g. '/data/state' or 's3://bucket/state')" + (" or None" if optional else ""),
    )


def source(value: Any) -> Any:
    """The staged input: a path, URI, directory or glob, or a non-empty list of them.

    :param value: the ``source`` argument.
    """
    accepted = "a path, URI, directory or glob, or a list of them (e.g. 's3://bucket/aiq/part-*.csv.gz')"
    if _is_path(value) or isinstance(value, str):
        return value  # empty text (a template that rendered nothing) is located, and refused, by locate()
    if (
        isinstance(value, list | tuple)
        and value
        and all(_is_path(v) or isinstance(v, list | tuple) for v in value)
    ):
        return value
    raise ArgumentError("source", value, accepted)


def _is_path(value: Any) -> bool:
    return (isinstance(value, str) and bool(value.strip())) or isinstance(
        value, os.PathLike | ObjectStoragePath
    )


def attribute_columns(
    name: str, value: Any, *, reserved: Collection[str] = (), reserved_by: str = ""
) -> tuple[str, ...]:
    """Columns set as custom attributes of the same name: distinct names Braze accepts.

    :param name: the argument.
    :param value: its value (a list of column names).
    :param reserved: more names the caller cannot take.
    :param reserved_by: what takes them (e.g. "the audience state's own columns").
    """
    names = column_names(name, value, distinct=True) or ()
    for column in names:
        problem = name_problem(column, what="attribute", reserved=RESERVED_ATTRIBUTE_NAMES)
        if problem:
            raise ArgumentError(name, value, f"a list of attribute names Braze accepts ({problem})")
        if column in reserved:
            taken = ", ".join(repr(r) for r in sorted(reserved))
            raise ArgumentError(name, value, f"a list of attribute names other than {taken} ({reserved_by})")
    return names


# -- structured values ----------------------------------------------------------------------------


def json_object(name: str, value: Any) -> dict[str, Any]:
    """A JSON object: a dict, or its JSON text (what a template renders); ``None`` or ``""`` is empty.

    :param name: the argument.
    :param value: its value.
    """
    accepted = 'a JSON object, e.g. {"offer": "10%"}, as a dict or as its JSON text'
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise ArgumentError(name, value, f"{accepted} (not valid JSON: {exc})") from None
    if not isinstance(value, Mapping) or any(not isinstance(k, str) for k in value):
        raise ArgumentError(name, value, accepted)
    return dict(value)


def attribute_template(value: Any) -> str:
    """A membership attribute name template: text using only ``{audience_id}`` and ``{split_id}``.

    :param value: the ``attribute_template`` argument.
    """
    accepted = "text using only the fields {audience_id} and {split_id}, e.g. 'AIQ_{audience_id}_{split_id}'"
    if not isinstance(value, str) or not value.strip():
        raise ArgumentError("attribute_template", value, accepted)
    try:
        value.format(audience_id="a", split_id="s")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ArgumentError(
            "attribute_template", value, f"{accepted} ({type(exc).__name__}: {exc})"
        ) from None
    return value

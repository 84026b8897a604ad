"""The Braze conformance corpus: documented request/answer pairs, as typed plain data.

Each :class:`ConformancePair` says what a request to Braze looks like, what Braze answers (status,
body shape, the exact ``message`` where Braze fixes it, a concrete example), what the client must
make of it (``expect``, a verdict of ``/work/briefs/verdicts.md``) and where that is written down
(``source``). The pairs are in :mod:`tests.conformance.pairs`; :func:`load_pairs` returns them.

Consumers: ``test_sandbox_conformance.py`` replays every pair against the sandbox; the client's
classification tests feed ``answer.example`` (or a sandbox replay) to the hook and engine and check
``expect``. See ``README.md`` in this directory.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: The verdicts of /work/briefs/verdicts.md, fixed by the integrator.
VERDICTS = ("accepted", "refused_items", "refused", "setup_error", "rate_limited", "retry", "uncertain")
#: The endpoints the provider calls.
ENDPOINTS = (
    "/users/track",
    "/campaigns/trigger/send",
    "/sends/id/create",
    "/users/export/ids",
    "/campaigns/list",
)

Verdict = Literal["accepted", "refused_items", "refused", "setup_error", "rate_limited", "retry", "uncertain"]
#: ``valid``: a key with every permission; ``invalid``: a key Braze does not know;
#: ``lacking_permission``: a valid key without the endpoint's permission.
KeySituation = Literal["valid", "invalid", "lacking_permission"]
#: What came back: a JSON body, an empty body, a body that is not JSON, a body shorter than its
#: ``Content-Length``, or no answer (connection ``reset`` with RST, ``closed`` without an answer,
#: read ``timeout``).
AnswerKind = Literal["json", "empty", "text", "truncated", "reset", "closed", "timeout"]

#: Type names of :attr:`Answer.shape`. ``error`` is a minor error ``{"type": str, "input_array":
#: str, "index": int}``.
TYPE_NAMES = (
    "str",
    "int",
    "number",
    "bool",
    "null",
    "list",
    "dict",
    "list[str]",
    "list[dict]",
    "list[error]",
)


@dataclass(frozen=True)
class Answer:
    """What Braze answers.

    :param kind: what came back (see :data:`AnswerKind`).
    :param status: the HTTP status (``None`` when no answer came back).
    :param shape: the exact key set of the JSON body, each key with its type name (:data:`TYPE_NAMES`).
    :param values: exact values of some keys, where Braze fixes them (``message``, ``errors``…).
    :param headers: response headers that must be present (lower-case name) with their type name.
    :param example: a concrete body: a JSON value, or the text of a ``text``/``truncated`` body.
    """

    kind: AnswerKind
    status: int | None
    shape: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    example: Any = None


@dataclass(frozen=True)
class Setup:
    """What must be true before the request is sent.

    :param sandbox: overrides for the sandbox (``BrazeSandbox(**sandbox)``): faults, refusals,
        object count rule, rates, campaigns… — how the situation is produced in the sandbox.
    :param users: external ids that exist as profiles before the request.
    :param prime: send the same request this many times first (to use up a rate limit or quota).
    """

    sandbox: dict[str, Any] = field(default_factory=dict)
    users: tuple[str, ...] = ()
    prime: int = 0


@dataclass(frozen=True)
class ConformancePair:
    """One documented request/answer pair.

    :param id: a stable name.
    :param endpoint: the REST path.
    :param method: ``POST`` or ``GET``.
    :param key: the API key situation.
    :param request: the JSON body (``POST``), or the query parameters (``GET``).
    :param answer: what Braze answers.
    :param expect: the verdict the client must reach (/work/briefs/verdicts.md).
    :param source: where the pair is written down: a ``braze-inc/braze-docs`` path, or the fixture
        path and repository of an integration that recorded it from live Braze, or the brief/issue
        that requires the case.
    :param setup: how the situation is produced.
    :param raw_body: send these bytes instead of ``request`` as JSON (malformed bodies).
    :param content_type: the request's ``Content-Type``.
    :param note: what is worth knowing about the pair.
    """

    id: str
    endpoint: str
    method: Literal["POST", "GET"]
    key: KeySituation
    request: Any
    answer: Answer
    expect: Verdict
    source: str
    setup: Setup = field(default_factory=Setup)
    raw_body: str | None = None
    content_type: str = "application/json"
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The pair as JSON-able plain data."""
        return asdict(self)


def load_pairs() -> list[ConformancePair]:
    """Every pair of the corpus, in a stable order."""
    from tests.conformance.pairs import PAIRS

    return list(PAIRS)


def dump_json() -> str:
    """The corpus as a JSON document (for consumers outside Python)."""
    return json.dumps([pair.as_dict() for pair in load_pairs()], indent=2, sort_keys=True)


def type_name_matches(value: Any, name: str) -> bool:
    """Whether a JSON value has the type called ``name`` (:data:`TYPE_NAMES`).

    :param value: a decoded JSON value.
    :param name: a type name.
    """
    simple = {
        "str": str,
        "int": int,
        "bool": bool,
        "list": list,
        "dict": dict,
    }
    if name == "null":
        return value is None
    if name == "number":
        return type(value) in (int, float)
    if name in simple:
        return type(value) is simple[name]
    if name == "list[str]":
        return type(value) is list and all(type(v) is str for v in value)
    if name == "list[dict]":
        return type(value) is list and all(type(v) is dict for v in value)
    if name == "list[error]":
        return type(value) is list and all(
            type(v) is dict
            and set(v) == {"type", "input_array", "index"}
            and type(v["type"]) is str
            and type(v["input_array"]) is str
            and type(v["index"]) is int
            for v in value
        )
    raise ValueError(f"unknown type name {name!r}")


def shape_problems(body: Any, answer: Answer) -> list[str]:
    """How a decoded JSON body differs from an answer's shape and fixed values (empty: it matches).

    :param body: the decoded body.
    :param answer: the expected answer.
    """
    if type(body) is not dict:
        return [f"the body is {type(body).__name__}, not an object"]
    problems = []
    if set(body) != set(answer.shape):
        problems.append(f"keys {sorted(body)} != {sorted(answer.shape)}")
    for key, name in answer.shape.items():
        if key in body and not type_name_matches(body[key], name):
            problems.append(f"{key}: {body[key]!r} is not {name}")
    for key, value in answer.values.items():
        if body.get(key) != value:
            problems.append(f"{key}: {body.get(key)!r} != {value!r}")
    return problems

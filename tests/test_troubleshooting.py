"""Every message the package raises is listed in ``docs/troubleshooting.md``, so the page cannot drift.

The package's source is read (not run): each ``raise`` whose message is written in place (a string,
an f-string, a concatenation), each :class:`~airflow_provider_aiq_braze.arguments.ArgumentError`
(its "what is accepted" text, written in place or in a variable named ``accepted``) and the messages
the storage module and the identifier rule compose. The longest piece of
fixed text of each message must appear word for word on the page. The sandbox is left out: it is a
stand-in for Braze, documented with Braze's own answers in ``docs/sandbox.md``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "airflow_provider_aiq_braze"
PAGE = ROOT / "docs" / "troubleshooting.md"

#: Modules not scanned, with the reason.
SKIPPED_DIRECTORIES = {"sandbox": "a stand-in for Braze; its answers are documented in docs/sandbox.md"}

#: Functions whose returned f-strings are messages raised elsewhere (``module path: function``).
MESSAGE_FUNCTIONS = {
    "storage/problems.py": {"known_problem", "explain", "check_writable"},
    "contracts/identifiers.py": {"refusal"},
}

#: A variable holding what an argument accepts (the end of an ``ArgumentError`` message).
ACCEPTED = "accepted"

#: Exceptions that are not messages for users: a bug in the provider, not a situation to act on.
NOT_FOR_USERS = {"AssertionError", "NotImplementedError", "StopIteration"}

#: Messages raised and caught inside the package (never seen by a user), with where they are caught.
CAUGHT_INSIDE = {"not a finite number": "contracts/common.py: parse_timestamp makes it a timestamp reject"}

#: The shortest fixed text that counts as a message's fingerprint.
MIN_FRAGMENT = 12


@dataclass(frozen=True)
class Message:
    """One message of the package: where it is raised and its longest piece of fixed text."""

    where: str
    fragment: str


def _pieces(node: ast.AST) -> list[str] | None:
    """The fixed text of a message expression, split where values are filled in; ``None`` if not literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        pieces, current = [], ""
        for value in node.values:
            if isinstance(value, ast.Constant):
                current += str(value.value)
            else:
                pieces.append(current)
                current = ""
        return [*pieces, current]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _pieces(node.left), _pieces(node.right)
        if left is None or right is None:
            return None
        return [*left[:-1], left[-1] + right[0], *right[1:]]
    return None


def _fragment(pieces: list[str]) -> str | None:
    """The longest piece of fixed text, cut at a word boundary to at most 40 characters (the page may
    shorten a long message with "…")."""
    longest = max((p.strip(" .,:;()'\"") for p in pieces), key=len)
    if len(longest) < MIN_FRAGMENT:
        return None
    if len(longest) > 40:
        longest = longest[: longest.rfind(" ", 0, 41)]
    return longest.strip(" .,:;(")


def _exception_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else "?"


def _messages_of(path: Path) -> list[Message]:
    relative = path.relative_to(PACKAGE).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[Message] = []

    def add(node: ast.AST, message: ast.AST) -> None:
        pieces = _pieces(message)
        fragment = _fragment(pieces) if pieces else None
        if fragment:
            found.append(Message(f"{relative}:{node.lineno}", fragment))

    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            call = node.exc
            name = _exception_name(call)
            if name in NOT_FOR_USERS:
                continue
            if name == "ArgumentError" and len(call.args) == 3:
                add(node, call.args[2])  # "<argument> must be <accepted>; got <value>"
            elif call.args:
                add(node, call.args[0])
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == ACCEPTED for t in node.targets
        ):
            add(node, node.value)
        if isinstance(node, ast.FunctionDef) and node.name in MESSAGE_FUNCTIONS.get(relative, ()):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Return) and inner.value is not None:
                    add(inner, inner.value)
                if isinstance(inner, ast.Assign) and isinstance(inner.value, ast.JoinedStr):
                    add(inner, inner.value)
    return found


def _all_messages() -> list[Message]:
    messages: list[Message] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in SKIPPED_DIRECTORIES:
            continue
        messages += _messages_of(path)
    return messages


def _page() -> str:
    text = PAGE.read_text(encoding="utf-8").replace("\\|", "|")
    return re.sub(r"\s+", " ", text)


MESSAGES = _all_messages()


def test_the_scan_finds_the_messages() -> None:
    # a scan that finds nothing would pass vacuously
    assert len(MESSAGES) > 90
    fragments = {m.fragment for m in MESSAGES}
    assert any("cannot be used" in f for f in fragments)  # the storage module's composed messages
    assert any(f.startswith("a whole number") for f in fragments)  # an ArgumentError's accepted text
    assert any("identifiers must be text" in f for f in fragments)  # a composed message


@pytest.mark.parametrize("message", MESSAGES, ids=[m.where for m in MESSAGES])
def test_every_message_is_on_the_troubleshooting_page(message: Message) -> None:
    if message.fragment in CAUGHT_INSIDE:
        return
    page = _page()
    fragment = re.sub(r"\s+", " ", message.fragment)
    assert fragment in page, (
        f"{message.where} raises a message whose text {fragment!r} is not in docs/troubleshooting.md: "
        "add the message (with what to do) to the page"
    )

"""The sandbox's admin API under ``/_sandbox/``: inspect the state, change faults and refusals, reset.

No key is needed; the HTTP layer answers loopback clients only (unless ``--allow-remote-admin``).
Admin calls are not counted as Braze requests and draw no faults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox

Params = dict[str, list[str]]


def _profiles(sandbox: BrazeSandbox, params: Params) -> dict[str, Any]:
    state = sandbox.state
    if "external_id" in params:
        found = state.profile(params["external_id"][0])
        return {"profiles": [found] if found else []}
    if "braze_id" in params:
        found = state.profile_by_braze_id(params["braze_id"][0])
        return {"profiles": [found] if found else []}
    return {"profiles": state.profiles()}


def _events(sandbox: BrazeSandbox, params: Params) -> dict[str, Any]:
    return {"events": sandbox.state.events(params["name"][0] if "name" in params else None)}


def _listing(name: str) -> Callable[[BrazeSandbox, Params], dict[str, Any]]:
    """A reader answering ``{name: sandbox.state.<name>()}``."""

    def read(sandbox: BrazeSandbox, params: Params) -> dict[str, Any]:
        return {name: getattr(sandbox.state, name)()}

    return read


def _stats(sandbox: BrazeSandbox, params: Params) -> dict[str, Any]:
    return sandbox.state.stats()


def _faults(sandbox: BrazeSandbox, params: Params) -> dict[str, Any]:
    return {"faults": sandbox.fault_config.as_dict()}


def _refusals(sandbox: BrazeSandbox, params: Params) -> dict[str, Any]:
    return {"refusals": sandbox.refusals.as_dict()}


def _health(sandbox: BrazeSandbox, params: Params) -> dict[str, Any]:
    return {"status": "ok"}


#: ``GET /_sandbox/<name>`` readers.
READERS: dict[str, Callable[[BrazeSandbox, Params], dict[str, Any]]] = {
    "health": _health,
    "profiles": _profiles,
    "events": _events,
    "purchases": _listing("purchases"),
    "dispatches": _listing("dispatches"),
    "messages": _listing("messages"),
    "send_ids": _listing("send_ids"),
    "stats": _stats,
    "faults": _faults,
    "refusals": _refusals,
}
#: ``POST /_sandbox/<name>`` writers.
WRITERS = frozenset({"faults", "refusals", "reset"})


def write(sandbox: BrazeSandbox, name: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply one admin write.

    :param sandbox: the sandbox.
    :param name: ``faults``, ``refusals`` or ``reset``.
    :param changes: the decoded body: fault settings (``clear``, ``seed`` too) for ``faults``;
        ``ids``, ``prefixes`` and ``clear`` for ``refusals``.
    :return: the answer body.
    :raises ValueError: for unknown or invalid settings.
    :raises TypeError: for values of the wrong type.
    """
    if name == "reset":
        sandbox.reset()
        return {"message": "reset"}
    clear = changes.pop("clear", False)
    if type(clear) is not bool:
        raise ValueError("'clear' must be true or false")
    if name == "refusals":
        unknown = sorted(set(changes) - {"ids", "prefixes"})
        if unknown:
            raise ValueError(f"unknown refusal setting(s): {', '.join(unknown)}")
        refusals = sandbox.set_refusals(
            ids=changes.get("ids") or (), prefixes=changes.get("prefixes") or (), clear=clear
        )
        return {"refusals": refusals.as_dict()}
    faults = sandbox.set_faults(clear=clear, **changes)  # a "seed" in changes restarts the generator
    return {"faults": faults.as_dict()}

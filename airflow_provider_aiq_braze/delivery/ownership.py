"""One owner per ledger: a lease a task instance holds while it sends.

Before sending anything, a task instance takes its ledger's lease: a small JSON object beside the
ledger (``<ledger>.lease``) naming the owner (host, pid, try, a random token), created with
:func:`~airflow_provider_aiq_braze.storage.create_exclusive`. A heartbeat thread renews it every
``ttl / 3`` with :func:`~airflow_provider_aiq_braze.storage.replace_if`. Another instance of the
same task either waits (polling) up to ``wait`` seconds or fails at once with :class:`LeaseHeld`
naming the holder.

A lease whose holder died (SIGKILL, a lost worker) stops being renewed. The next instance takes it
over with ``replace_if`` on the version it read, so of several takers exactly one wins, once either:

* it has seen the same version of the lease for ``ttl + grace`` seconds on its own monotonic clock
  (needs no clock agreement between hosts), or
* its wall clock is past the lease's ``expires_at`` (written in the holder's wall clock) by more than
  ``max_clock_skew`` (assumes the hosts' clocks agree within that, as NTP keeps them).

The owner counts its lease as valid for ``ttl - ttl / 4`` seconds (its own monotonic clock) after
the start of its last successful renewal, so it stops before any taker may start. :meth:`LedgerLease.check`,
cheap and thread-safe, raises :class:`LeaseLost` once that time passed or a renewal found the lease
changed: call it right before each request.

Usage (the engine's side)::

    lease = LedgerLease(lease_path(paths.ledger), owner=OwnerId.current(try_number=ti.try_number))
    lease.acquire()              # LeaseHeld: another instance owns it (message names it)
    try:
        ...
        lease.check()            # before each request; LeaseLost: stop sending
        ...
    finally:
        lease.release()

On a storage without conditional writes (see :mod:`airflow_provider_aiq_braze.storage.conditional`)
:meth:`LedgerLease.acquire` raises :class:`~airflow_provider_aiq_braze.storage.ConditionalWritesUnsupported`
unless ``LeaseSettings(require_exclusive=False)``, which logs a warning and runs unguarded.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.storage import (
    ConditionalWritesUnsupported,
    create_exclusive,
    delete_if,
    is_local,
    read_versioned,
    replace_if,
    supports_conditional_writes,
    verify_conditional_writes,
)

log = logging.getLogger(__name__)

#: Suffix of a ledger's lease object.
LEASE_SUFFIX = ".lease"

_verified: set[str] = set()
_verified_lock = threading.Lock()


class LeaseError(RuntimeError):
    """Base of the lease errors."""


class LeaseHeld(LeaseError):
    """Another task instance owns the ledger; nothing was sent."""


class LeaseLost(LeaseError):
    """This instance no longer owns the ledger (taken over, or not renewed in time): stop sending."""


@dataclass(frozen=True)
class LeaseSettings:
    """How a lease is held and waited for.

    :param ttl: seconds a lease lives without renewal; renewed every ``ttl / 3``.
    :param wait: seconds to wait for another instance's lease to end (released or expired) before
        failing with :class:`LeaseHeld`; ``0`` fails at once.
    :param poll_interval: seconds between two looks at a held lease while waiting.
    :param grace: extra seconds a taker waits, past ``ttl``, after it first saw the current version.
    :param max_clock_skew: how far apart the hosts' wall clocks may be; a lease is also expired
        once the taker's clock is past its ``expires_at`` by more than this.
    :param require_exclusive: on a storage without conditional writes, refuse (``True``) or run
        without a lease after a warning (``False``).
    """

    ttl: float = 60.0
    wait: float = 120.0
    poll_interval: float = 2.0
    grace: float = 10.0
    max_clock_skew: float = 30.0
    require_exclusive: bool = True

    def __post_init__(self) -> None:
        if self.ttl <= 0 or self.wait < 0 or self.poll_interval <= 0 or self.grace < 0:
            raise ValueError(
                f"lease settings must be positive (ttl={self.ttl}, wait={self.wait}, "
                f"poll_interval={self.poll_interval}, grace={self.grace})"
            )
        if self.max_clock_skew < 0:
            raise ValueError(f"max_clock_skew must not be negative (got {self.max_clock_skew})")


@dataclass(frozen=True)
class OwnerId:
    """Who holds a lease.

    :param host: the worker's host name.
    :param pid: the process id.
    :param try_number: the task try.
    :param token: random, unique to this owner (two owners never share it).
    :param label: free text for messages (e.g. the run id).
    """

    host: str
    pid: int
    try_number: int
    token: str
    label: str = ""

    @classmethod
    def current(cls, *, try_number: int = 1, label: str = "") -> OwnerId:
        """This process, with a fresh token.

        :param try_number: the task try.
        :param label: free text for messages (e.g. the run id).
        """
        return cls(socket.gethostname(), os.getpid(), try_number, secrets.token_hex(8), label)

    def describe(self) -> str:
        """``host pid N, try T (label)``, for messages."""
        extra = f", {self.label}" if self.label else ""
        return f"{self.host} pid {self.pid}, try {self.try_number}{extra}"


def lease_path(ledger: ObjectStoragePath) -> ObjectStoragePath:
    """The lease of a ledger: ``<ledger>.lease`` beside it.

    :param ledger: the ledger file (its path names the dag, task, map index and input).
    """
    return ledger.parent / f"{ledger.name}{LEASE_SUFFIX}"


@dataclass
class LeaseInfo:
    """What a lease object holds.

    :param owner: the holder.
    :param ttl: the holder's ``ttl``.
    :param expires_at: the holder's wall clock (epoch seconds) at its last renewal, plus ``ttl``.
    :param renewals: renewals so far (makes each write's content unique).
    """

    owner: OwnerId
    ttl: float
    expires_at: float
    renewals: int = 0

    def encode(self) -> bytes:
        """The lease object's content (JSON)."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> LeaseInfo | None:
        """Parse a lease object; ``None`` when it is not one (then only observation expires it)."""
        try:
            raw = json.loads(data)
            return cls(
                owner=OwnerId(**raw["owner"]),
                ttl=float(raw["ttl"]),
                expires_at=float(raw["expires_at"]),
                renewals=int(raw.get("renewals", 0)),
            )
        except (ValueError, TypeError, KeyError):
            return None


class LedgerLease:
    """The lease on one ledger, held by this task instance.

    :param path: the lease object (:func:`lease_path` of the ledger).
    :param owner: who takes it (:meth:`OwnerId.current`).
    :param settings: TTL and waiting.
    :param owned: what :class:`LeaseHeld` says is owned by another instance (a lease guarding
        something else than a ledger names it here).
    :param advice: what :class:`LeaseHeld` advises.
    """

    def __init__(
        self,
        path: ObjectStoragePath,
        *,
        owner: OwnerId,
        settings: LeaseSettings | None = None,
        owned: str = "Another instance of this task owns its ledger",
        advice: str = (
            "If that instance is dead, a retry takes over once the lease expires; otherwise let it "
            "finish (a re-run then skips what it delivered)."
        ),
    ) -> None:
        self.path = path
        self.owner = owner
        self.settings = settings or LeaseSettings()
        self._owned = owned
        self._advice = advice
        self._version: str | None = None
        self._renewals = 0
        self._valid_until = 0.0  # monotonic
        self._lost_reason: str | None = None
        self._held = False
        self._unguarded = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------
    # the API

    def acquire(self) -> None:
        """Take the lease, waiting up to ``settings.wait`` seconds for another holder to go.

        :raises LeaseHeld: another instance still holds it after the wait; the message names it.
        :raises ConditionalWritesUnsupported: the storage cannot guarantee exclusivity (and
            ``require_exclusive``).
        """
        if self._held:
            return
        if not self._guarded():
            return
        give_up = time.monotonic() + self.settings.wait
        seen: tuple[str, float] | None = None  # (version, monotonic time first seen)
        while True:
            attempt = time.monotonic()
            if self._try_create():
                return
            current = read_versioned(self.path)
            if current is None:  # released between our create and our read: try again at once
                if time.monotonic() > give_up:
                    raise LeaseHeld(self._held_message(None))
                continue
            data, version = current
            holder = LeaseInfo.decode(data)
            if holder is not None and holder.owner.token == self.owner.token:
                self._won(version, attempt, takeover=None)  # our create landed, its answer was lost
                return
            if seen is None or seen[0] != version:
                seen = (version, time.monotonic())
            if self._expired(holder, seen[1]) and self._try_takeover(holder, version):
                return
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                raise LeaseHeld(self._held_message(holder))
            time.sleep(min(remaining, self.settings.poll_interval * random.uniform(0.8, 1.2)))

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless this instance still owns the ledger. Cheap; thread-safe.

        :raises LeaseLost: the lease was taken over, released, never acquired, or not renewed in time.
        """
        if self._unguarded:
            return
        if self._lost_reason is not None:
            raise LeaseLost(self._lost_reason)
        if not self._held:
            raise LeaseLost(f"the lease {self.path} is not held by this instance ({self.owner.describe()})")
        if time.monotonic() >= self._valid_until:
            raise LeaseLost(
                f"the lease {self.path} was not renewed in time (storage unreachable or the process "
                f"paused for more than {self._validity():.0f} s): another instance may take it over; "
                "stopping before the next request"
            )

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours. Idempotent; never raises for
        storage errors (the lease then expires after its TTL)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        if self._held and self._lost_reason is None and self._version is not None:
            try:
                delete_if(self.path, self._version)
            except Exception as exc:
                log.warning("Could not delete the lease %s (it expires by itself): %s", self.path, exc)
        if self._held and self._lost_reason is None:
            self._lost_reason = f"the lease {self.path} was released"
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this instance holds the lease now (without raising)."""
        try:
            self.check()
        except LeaseLost:
            return False
        return True

    def __enter__(self) -> LedgerLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------------------------------------
    # acquiring

    def _guarded(self) -> bool:
        """Whether the lease can be exclusive here (refuse, or warn and run unguarded, if not)."""
        message = (
            f"exclusivity not guaranteed on {self.path}: this storage has no conditional writes in this "
            "provider (local files, NFS with locks and S3 have), so two instances of one task could both "
            "send. Put state_path on such a storage"
        )
        try:
            if supports_conditional_writes(self.path):
                if not is_local(self.path):
                    _verify_once(self.path.parent)
                return True
        except ConditionalWritesUnsupported as exc:  # an S3-compatible store ignoring the conditions
            message = str(exc)
        if self.settings.require_exclusive:
            raise ConditionalWritesUnsupported(message + ", or accept the risk with require_exclusive=False.")
        log.warning("%s. Running without a lease (require_exclusive=False).", message)
        self._unguarded = True
        return False

    def _info(self) -> LeaseInfo:
        return LeaseInfo(
            owner=self.owner,
            ttl=self.settings.ttl,
            expires_at=time.time() + self.settings.ttl,
            renewals=self._renewals,
        )

    def _try_create(self) -> bool:
        started = time.monotonic()
        version = create_exclusive(self.path, self._info().encode())
        if version is None:
            return False
        self._won(version, started, takeover=None)
        return True

    def _try_takeover(self, holder: LeaseInfo | None, version: str) -> bool:
        self._renewals += 1
        started = time.monotonic()
        new = replace_if(self.path, self._info().encode(), version)
        if new is None:
            return False  # renewed by its holder, or another taker won
        self._won(new, started, takeover=holder)
        return True

    def _expired(self, holder: LeaseInfo | None, first_seen: float) -> bool:
        ttl = holder.ttl if holder is not None else self.settings.ttl
        if time.monotonic() - first_seen >= ttl + self.settings.grace:
            return True
        return holder is not None and time.time() > holder.expires_at + self.settings.max_clock_skew

    def _won(self, version: str, started: float, *, takeover: LeaseInfo | None) -> None:
        self._version = version
        self._valid_until = started + self._validity()
        self._held = True
        self._lost_reason = None
        self._stop.clear()
        if takeover is not None:
            log.warning(
                "Took over the lease %s from %s, which did not renew it in time (dead or cut off).",
                self.path,
                takeover.owner.describe(),
            )
        else:
            log.info("Acquired the lease %s (%s).", self.path, self.owner.describe())
        self._thread = threading.Thread(target=self._heartbeat, name=f"lease-{self.path.name}", daemon=True)
        self._thread.start()

    def _held_message(self, holder: LeaseInfo | None) -> str:
        who = holder.owner.describe() if holder is not None else "an unreadable lease"
        expires = ""
        if holder is not None:
            left = holder.expires_at - time.time()
            expires = f"; it expires in {left:.0f} s unless renewed" if left > 0 else "; it is past expiry"
        return (
            f"{self._owned}: {who} holds the lease {self.path}{expires}. "
            f"Waited {self.settings.wait:.0f} s; nothing was sent. {self._advice}"
        )

    # ------------------------------------------------------------------------------------------
    # renewing

    def _validity(self) -> float:
        return self.settings.ttl - self.settings.ttl / 4

    def _heartbeat(self) -> None:
        interval = self.settings.ttl / 3
        while not self._stop.wait(interval):
            if not self._renew():
                return

    def _renew(self) -> bool:
        """Renew once; ``False`` when the lease is lost for good."""
        assert self._version is not None
        self._renewals += 1
        started = time.monotonic()
        data = self._info().encode()
        try:
            new = replace_if(self.path, data, self._version)
        except Exception as exc:  # no answer: the write may or may not have happened
            log.warning("Could not renew the lease %s (will retry): %s", self.path, exc)
            new = self._landed(data)
            if new is not None:
                self._version = new  # it did happen: the next renewal must name its version
            return True
        if new is None:
            self._lost_reason = (
                f"the lease {self.path} was taken over by another instance (or removed) while this "
                f"one ({self.owner.describe()}) held it; stopping before the next request"
            )
            log.error("%s.", self._lost_reason)
            return False
        self._version = new
        self._valid_until = started + self._validity()
        return True

    def _landed(self, data: bytes) -> str | None:
        """The lease's version if it holds exactly ``data`` (a write whose answer was lost)."""
        try:
            current = read_versioned(self.path)
        except Exception:
            return None
        return current[1] if current is not None and current[0] == data else None


def _verify_once(directory: ObjectStoragePath) -> None:
    """Probe a remote storage's conditional writes once per process and location root."""
    key = str(directory).split("/")[0:3]
    root = "/".join(key)
    with _verified_lock:
        if root in _verified:
            return
        verify_conditional_writes(directory)
        _verified.add(root)

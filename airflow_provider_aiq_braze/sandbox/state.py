"""What the sandbox remembers: profiles, events, purchases, dispatches, send ids and counters.

Everything is guarded by one lock; validation happens before the lock is taken, so the critical
section is only dictionary updates. Readers get copies.
"""

from __future__ import annotations

import copy
import itertools
import os
import threading
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from airflow_provider_aiq_braze.sandbox.checks import Identity
from airflow_provider_aiq_braze.sandbox.facts import STANDARD_PROFILE_FIELDS
from airflow_provider_aiq_braze.sandbox.validation import Recipient, TrackObject


class SendIdQuotaExceeded(Exception):
    """``/sends/id/create`` was called more than the daily quota allows."""


@dataclass(slots=True)
class Profile:
    """One user profile.

    :param braze_id: the generated Braze id.
    :param external_id: the external id, when known.
    :param aliases: ``(alias_label, alias_name)`` pairs.
    :param email: the email address, when known.
    :param phone: the phone number, when known.
    :param attributes: every attribute written (standard and custom), ``null`` writes removed.
    :param created_at: creation time (UTC ISO).
    :param updated_at: last write time (UTC ISO).
    """

    braze_id: str
    external_id: str | None = None
    aliases: list[tuple[str, str]] = field(default_factory=list)
    email: str | None = None
    phone: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able copy."""
        return {
            "braze_id": self.braze_id,
            "external_id": self.external_id,
            "user_aliases": [{"alias_label": lab, "alias_name": name} for lab, name in self.aliases],
            "email": self.email,
            "phone": self.phone,
            "attributes": copy.deepcopy(self.attributes),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def export(self, fields: list[str] | None) -> dict[str, Any]:
        """The profile as ``/users/export/ids`` shows it.

        :param fields: ``fields_to_export`` (``None``: all).
        """
        user: dict[str, Any] = {"braze_id": self.braze_id, "created_at": self.created_at}
        if self.external_id is not None:
            user["external_id"] = self.external_id
        if self.aliases:
            user["user_aliases"] = [{"alias_label": lab, "alias_name": name} for lab, name in self.aliases]
        custom: dict[str, Any] = {}
        for key, value in self.attributes.items():
            if key in STANDARD_PROFILE_FIELDS:
                user[key] = copy.deepcopy(value)
            else:
                custom[key] = copy.deepcopy(value)
        if custom:
            user["custom_attributes"] = custom
        if fields is not None:
            user = {k: v for k, v in user.items() if k in fields}
        return user


def _logged(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of an event or purchase record with its time as an ISO string."""
    out = copy.deepcopy(record)
    moment = out.get("time")
    if isinstance(moment, datetime):
        out["time"] = moment.isoformat()
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class SandboxState:
    """The sandbox's workspace. Thread-safe; the in-process inspection handle.

    :param log_limit: how many events, purchases and dispatches are kept (counters stay exact).
    :param seed: seeds the generated ``braze_id`` prefix (``None``: random).
    """

    def __init__(self, log_limit: int = 100_000, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._log_limit = log_limit
        self._seed = seed
        self._clear()

    def _clear(self) -> None:
        prefix = os.urandom(4).hex() if self._seed is None else f"{self._seed & 0xFFFFFFFF:08x}"
        self._id_prefix = prefix
        self._id_counter = itertools.count(1)
        self._profiles: dict[str, Profile] = {}
        self._by_identity: dict[Identity, Profile] = {}
        self._events: deque[dict[str, Any]] = deque(maxlen=self._log_limit)
        self._purchases: deque[dict[str, Any]] = deque(maxlen=self._log_limit)
        self._dispatches: deque[dict[str, Any]] = deque(maxlen=self._log_limit)
        self._send_ids: dict[str, dict[str, Any]] = {}
        self._send_ids_per_day: dict[date, int] = {}
        self._requests: dict[str, dict[str, int]] = {}
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "data_points",
                "attributes_processed",
                "events_processed",
                "purchases_processed",
                "events_recorded",
                "purchases_recorded",
                "recipients_messaged",
                "recipients_skipped",
                "dispatches",
                "skipped_update_existing_only",
                "unknown_braze_id",
                "minor_errors",
                "internal_errors",
            ),
            0,
        )
        self._faults: dict[str, int] = {}

    def reset(self) -> None:
        """Forget everything: profiles, logs, send ids and counters."""
        with self._lock:
            self._clear()

    # ---------------------------------------------------------------- writes (called by the server)

    def count_request(self, endpoint: str, status: str) -> None:
        """Count one request.

        :param endpoint: the path.
        :param status: the HTTP status, or ``reset`` / ``dropped`` when nothing was answered.
        """
        with self._lock:
            per = self._requests.setdefault(endpoint, {})
            per[status] = per.get(status, 0) + 1

    def count_fault(self, fault: str) -> None:
        """Count one injected fault.

        :param fault: its name (``latency``, ``reset``, ``error``, ``storm``, ``drop``, ``stall``).
        """
        with self._lock:
            self._faults[fault] = self._faults.get(fault, 0) + 1

    def count(self, counter: str, n: int = 1) -> None:
        """Add to a named counter.

        :param counter: the counter name.
        :param n: how much to add.
        """
        with self._lock:
            self._counters[counter] = self._counters.get(counter, 0) + n

    def _new_braze_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):016x}"

    def _find(self, identity: Identity) -> Profile | None:
        return self._by_identity.get(identity)

    def _create(self, identity: Identity, now: str) -> Profile:
        profile = Profile(self._new_braze_id(), created_at=now, updated_at=now)
        kind, value = identity
        if kind == "external_id":
            profile.external_id = value
        elif kind == "user_alias":
            label, name = value.split("\x00", 1)
            profile.aliases.append((label, name))
        elif kind == "email":
            profile.email = value
            profile.attributes["email"] = value
        elif kind == "phone":
            profile.phone = value
            profile.attributes["phone"] = value
        self._profiles[profile.braze_id] = profile
        self._by_identity[("braze_id", profile.braze_id)] = profile
        self._by_identity[identity] = profile
        return profile

    def _resolve(self, identity: Identity, update_existing_only: bool | None, now: str) -> Profile | None:
        """Find the profile an object is about, creating it where Braze would."""
        profile = self._by_identity.get(identity)
        if profile is not None:
            return profile
        kind = identity[0]
        if kind == "braze_id":
            # Braze cannot create a profile from a braze_id: the object is ignored.
            self._counters["unknown_braze_id"] += 1
            return None
        # Alias-only profiles are created only with an explicit `_update_existing_only: false`.
        create = update_existing_only is False if kind == "user_alias" else not update_existing_only
        if not create:
            self._counters["skipped_update_existing_only"] += 1
            return None
        return self._create(identity, now)

    def _write(self, profile: Profile, writes: dict[str, Any], now: str) -> int:
        attributes = profile.attributes
        for key, value in writes.items():
            if value is None:
                attributes.pop(key, None)
            else:
                attributes[key] = value
            if key == "email" or key == "phone":
                self._reindex(profile, key, value)
        profile.updated_at = now
        return len(writes)

    def _reindex(self, profile: Profile, kind: str, value: Any) -> None:
        old = profile.email if kind == "email" else profile.phone
        if old is not None and self._by_identity.get((kind, old)) is profile:
            del self._by_identity[(kind, old)]
        new = value if isinstance(value, str) and value else None
        if kind == "email":
            profile.email = new
        else:
            profile.phone = new
        if new is not None:
            self._by_identity[(kind, new)] = profile

    def apply_track(
        self, objects: Iterable[TrackObject], processed: dict[str, int], minor_errors: int
    ) -> None:
        """Apply the valid objects of one ``/users/track`` request.

        :param objects: validated objects, in request order.
        :param processed: objects processed per array, for the counters.
        :param minor_errors: how many objects were rejected.
        """
        now = _now()
        with self._lock:
            counters = self._counters
            by_identity = self._by_identity
            events = self._events
            recorded = {"events": 0, "purchases": 0}
            for obj in objects:
                profile = by_identity.get(obj.identity)
                if profile is None:
                    profile = self._resolve(obj.identity, obj.update_existing_only, now)
                    if profile is None:
                        continue
                array = obj.array
                record = obj.payload
                if array == "attributes":
                    counters["data_points"] += self._write(profile, record, now)
                    continue
                record["braze_id"] = profile.braze_id
                record["external_id"] = profile.external_id
                recorded[array] += 1
                if array == "events":
                    events.append(record)
                else:
                    self._purchases.append(record)
            counters["events_recorded"] += recorded["events"]
            counters["purchases_recorded"] += recorded["purchases"]
            for array, n in processed.items():
                counters[f"{array}_processed"] += n
            counters["minor_errors"] += minor_errors

    def apply_trigger(
        self, recipients: list[Recipient], fields: dict[str, Any], minor_errors: int
    ) -> dict[str, Any]:
        """Record one accepted ``/campaigns/trigger/send`` request and message its recipients.

        :param recipients: validated, deduplicated recipients.
        :param fields: the request's ``campaign_id``, ``send_id``, ``broadcast``, ``audience``,
            ``duplicates``.
        :param minor_errors: how many recipients were rejected.
        :return: the dispatch record.
        """
        now = _now()
        dispatch_id = uuid.uuid4().hex
        campaign_id, send_id = fields["campaign_id"], fields["send_id"]
        messages: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        with self._lock:
            targets: list[tuple[Profile, dict[str, Any], dict[str, Any]]] = []
            if fields["broadcast"]:
                base = fields["trigger_properties"]
                targets = [(p, {"braze_id": p.braze_id}, base) for p in self._profiles.values()]
            for recipient in recipients:
                profile = self._by_identity.get(recipient.identity)
                creatable = recipient.identity[0] in ("external_id", "user_alias")
                if profile is None and not recipient.send_to_existing_only and creatable:
                    profile = self._create(recipient.identity, now)
                if profile is None:
                    skipped.append({"identifier": recipient.identifier, "reason": "user not found"})
                    continue
                if recipient.attributes:
                    self._counters["data_points"] += self._write(profile, recipient.attributes, now)
                targets.append((profile, recipient.identifier, recipient.trigger_properties))
            for profile, identifier, props in targets:
                messages.append(
                    {
                        "campaign_id": campaign_id,
                        "send_id": send_id,
                        "dispatch_id": dispatch_id,
                        "identifier": identifier,
                        "braze_id": profile.braze_id,
                        "external_id": profile.external_id,
                        "trigger_properties": props,
                    }
                )
            record = {
                "dispatch_id": dispatch_id,
                "campaign_id": campaign_id,
                "send_id": send_id,
                "broadcast": fields["broadcast"],
                "audience": fields["audience"],
                "received_at": now,
                "messages": messages,
                "skipped": skipped,
                "skipped_count": len(skipped),
                "duplicates": fields["duplicates"],
                "errors": minor_errors,
            }
            self._dispatches.append(record)
            self._counters["dispatches"] += 1
            self._counters["recipients_messaged"] += len(messages)
            self._counters["recipients_skipped"] += len(skipped)
            self._counters["minor_errors"] += minor_errors
        return record

    def create_send_id(self, campaign_id: str, send_id: str | None, per_day: int) -> tuple[str, int]:
        """Create (or return) a send id for a campaign.

        Creating a send id that already exists for the same campaign returns it without using quota.

        :param campaign_id: the campaign.
        :param send_id: the requested id, or ``None`` to generate one.
        :param per_day: the daily quota.
        :return: the send id and how many creations remain today.
        :raises SendIdQuotaExceeded: when today's quota is used up.
        """
        today = datetime.now(timezone.utc).date()
        with self._lock:
            used = self._send_ids_per_day.get(today, 0)
            existing = self._send_ids.get(send_id) if send_id is not None else None
            if existing is not None and existing["campaign_id"] == campaign_id:
                return send_id, max(per_day - used, 0)  # type: ignore[return-value]
            if used >= per_day:
                raise SendIdQuotaExceeded
            value = send_id if send_id is not None else uuid.uuid4().hex
            self._send_ids[value] = {"send_id": value, "campaign_id": campaign_id, "created_at": _now()}
            self._send_ids_per_day[today] = used + 1
            return value, per_day - used - 1

    def send_id_quota_remaining(self, per_day: int) -> int:
        """How many send ids can still be created today.

        :param per_day: the daily quota.
        """
        today = datetime.now(timezone.utc).date()
        with self._lock:
            return max(per_day - self._send_ids_per_day.get(today, 0), 0)

    def export(
        self, identities: list[Identity], raw_ids: list[str], fields: list[str] | None
    ) -> dict[str, Any]:
        """Answer ``/users/export/ids`` (read-only).

        :param identities: the identities asked for.
        :param raw_ids: the ids as sent, in the same order.
        :param fields: ``fields_to_export``.
        """
        users: list[dict[str, Any]] = []
        invalid: list[str] = []
        seen: set[str] = set()
        with self._lock:
            for identity, raw in zip(identities, raw_ids, strict=False):
                profile = self._by_identity.get(identity)
                if profile is None:
                    invalid.append(raw)
                elif profile.braze_id not in seen:
                    seen.add(profile.braze_id)
                    users.append(profile.export(fields))
        answer: dict[str, Any] = {"users": users, "message": "success"}
        if invalid:  # "(optional, array of string)" (post_users_identifier.md)
            answer["invalid_user_ids"] = invalid
        return answer

    # ---------------------------------------------------------------- reads (the inspection handle)

    def profiles(self) -> list[dict[str, Any]]:
        """Every profile, as dicts (``attributes`` holds standard and custom attributes)."""
        with self._lock:
            return [p.as_dict() for p in self._profiles.values()]

    def profile(self, external_id: str) -> dict[str, Any] | None:
        """The profile with this external id, or ``None``.

        :param external_id: the external id.
        """
        with self._lock:
            found = self._by_identity.get(("external_id", external_id))
            return found.as_dict() if found else None

    def profile_by_braze_id(self, braze_id: str) -> dict[str, Any] | None:
        """The profile with this braze id, or ``None``.

        :param braze_id: the generated Braze id.
        """
        with self._lock:
            found = self._profiles.get(braze_id)
            return found.as_dict() if found else None

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Recorded events (the last ``log_limit``), oldest first, ``time`` as a UTC ISO string.

        :param name: only events with this name.
        """
        with self._lock:
            return [_logged(e) for e in self._events if name is None or e["name"] == name]

    def purchases(self) -> list[dict[str, Any]]:
        """Recorded purchases (the last ``log_limit``), oldest first, ``time`` as a UTC ISO string."""
        with self._lock:
            return [_logged(p) for p in self._purchases]

    def dispatches(self) -> list[dict[str, Any]]:
        """Accepted campaign sends, one record per request, with their ``messages``."""
        with self._lock:
            return [copy.deepcopy(d) for d in self._dispatches]

    def messages(self) -> list[dict[str, Any]]:
        """Every recipient messaged: campaign_id, send_id, dispatch_id, identifier, trigger_properties."""
        with self._lock:
            return [copy.deepcopy(m) for d in self._dispatches for m in d["messages"]]

    def send_ids(self) -> list[dict[str, Any]]:
        """Send ids created through ``/sends/id/create``."""
        with self._lock:
            return [dict(s) for s in self._send_ids.values()]

    @property
    def data_points(self) -> int:
        """Attribute writes so far: one per attribute key written, unchanged values included."""
        with self._lock:
            return self._counters["data_points"]

    def counter(self, name: str) -> int:
        """One named counter (see :meth:`stats` for the names).

        :param name: the counter.
        """
        with self._lock:
            return self._counters.get(name, 0)

    def requests(self, endpoint: str | None = None) -> dict[str, Any]:
        """Requests counted by status.

        :param endpoint: one path (returns ``{status: n}``), or ``None`` for ``{path: {status: n}}``.
            Statuses are strings: ``"201"``, ``"429"``, … and ``"reset"`` / ``"dropped"``.
        """
        with self._lock:
            if endpoint is not None:
                return dict(self._requests.get(endpoint, {}))
            return {path: dict(per) for path, per in self._requests.items()}

    def stats(self) -> dict[str, Any]:
        """Counters: data points, requests per endpoint and status, objects processed, faults."""
        with self._lock:
            c = self._counters
            return {
                "data_points": c["data_points"],
                "requests": {path: dict(per) for path, per in self._requests.items()},
                "objects_processed": {
                    "attributes": c["attributes_processed"],
                    "events": c["events_processed"],
                    "purchases": c["purchases_processed"],
                    "recipients": c["recipients_messaged"],
                },
                "counters": dict(c),
                "profiles": len(self._profiles),
                "events": c["events_recorded"],
                "purchases": c["purchases_recorded"],
                "dispatches": c["dispatches"],
                "send_ids": len(self._send_ids),
                "faults": dict(self._faults),
            }

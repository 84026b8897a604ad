"""Cut deliverables into request bodies within Braze's object and byte limits.

Batches are deterministic: the same records in the same order always give the same bodies,
which is what lets the ledger recognise a batch that was already delivered.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from functools import cached_property

from airflow_provider_aiq_braze.delivery.records import Deliverable
from airflow_provider_aiq_braze.storage import dumps


@dataclass(frozen=True)
class BodyTemplate:
    """The JSON around the array of objects in a request body.

    ``prefix + ",".join(objects) + suffix`` is the body: for ``/users/track`` events the prefix
    is ``{"events":[`` and the suffix ``]}``.

    :param prefix: JSON text before the first object.
    :param suffix: JSON text after the last object.
    """

    prefix: str
    suffix: str

    @cached_property
    def overhead(self) -> int:
        """Bytes of the body that are not objects."""
        return len(self.prefix.encode()) + len(self.suffix.encode())


@dataclass
class Batch:
    """One request: its objects, its body and where each object came from.

    :param seq: position of the batch in this run (0-based), for logs and the ledger.
    :param group: the group all its objects belong to.
    :param items: the deliverables, in body order.
    :param body: the exact request body.
    :param parent: for the objects of a batch Braze did not name when it refused the others (see
        :meth:`Batcher.remainder`), the digest of that batch; ``None`` otherwise.
    """

    seq: int
    group: str
    items: list[Deliverable]
    body: bytes
    parent: str | None = None
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        self.digest = hashlib.sha256(self.body).hexdigest()

    @property
    def rows(self) -> int:
        """Input rows this batch accounts for."""
        return sum(item.rows for item in self.items)


class OversizedObjectError(ValueError):
    """A single object does not fit in one request."""


class Batcher:
    """Accumulate deliverables per group and emit full batches.

    :param template_for: the body template of a group.
    :param max_objects: the most objects per request.
    :param max_bytes: the largest request body.
    """

    def __init__(
        self, template_for: Callable[[str], BodyTemplate], *, max_objects: int, max_bytes: int
    ) -> None:
        self._template_for = template_for
        self._max_objects = max_objects
        self._max_bytes = max_bytes
        self._open: dict[str, _OpenBatch] = {}
        self._seq = 0
        # how often each body was cut so far: a repeated body (identical rows) is another batch
        self._repeats: Counter[str] = Counter()

    def add(self, item: Deliverable) -> tuple[Batch, ...]:
        """Add one deliverable; returns the batches it completed (usually none).

        :param item: the deliverable.
        :raises OversizedObjectError: when the object alone is larger than a request may be.
        """
        text = item.text if item.text is not None else dumps(item.obj)
        size = len(text) if text.isascii() else len(text.encode())
        entry = self._open.get(item.group)
        if entry is None:
            template = self._template_for(item.group)
            entry = _OpenBatch(template)
            self._open[item.group] = entry
        if entry.template.overhead + size > self._max_bytes:
            raise OversizedObjectError(
                f"object of {size} bytes does not fit in one request of at most {self._max_bytes} bytes"
            )
        done: tuple[Batch, ...] = ()
        if entry.items and entry.used + 1 + size > self._max_bytes:
            done = (self._close(item.group),)
            entry = self._open[item.group] = _OpenBatch(entry.template)
        entry.used += size + (1 if entry.items else 0)
        entry.items.append(item)
        entry.texts.append(text)
        if len(entry.items) >= self._max_objects:
            done = (*done, self._close(item.group))
        return done

    def flush(self) -> Iterator[Batch]:
        """Emit every partly filled batch, in the order their groups first appeared."""
        for group in list(self._open):
            if self._open[group].items:
                yield self._close(group)

    def remainder(self, batch: Batch, refused: Collection[int]) -> Batch | None:
        """The objects of ``batch`` not in ``refused``, as a request of their own (``None`` if none).

        Braze answers HTTP 400 naming the invalid objects when no object of a request is valid;
        the others were not processed and go again once, without the refused ones. The
        remainder's digest is derived from the batch's (``<digest>+rest``), so a re-run rebuilds
        the same remainder and finds its outcome in the ledger.

        :param batch: the batch Braze refused objects of.
        :param refused: the indexes of the refused objects.
        """
        items = [item for index, item in enumerate(batch.items) if index not in refused]
        if not items:
            return None
        template = self._template_for(batch.group)
        texts = [item.text if item.text is not None else dumps(item.obj) for item in items]
        body = (template.prefix + ",".join(texts) + template.suffix).encode()
        rest = Batch(seq=batch.seq, group=batch.group, items=items, body=body, parent=batch.digest)
        rest.digest = f"{batch.digest}+rest"
        return rest

    def _close(self, group: str) -> Batch:
        entry = self._open.pop(group)
        body = (entry.template.prefix + ",".join(entry.texts) + entry.template.suffix).encode()
        batch = Batch(seq=self._seq, group=group, items=entry.items, body=body)
        self._seq += 1
        repeat = self._repeats[batch.digest]
        self._repeats[batch.digest] += 1
        if repeat:
            # the n-th repeat of a body in the input gets its own, equally deterministic, key:
            # otherwise the ledger takes it for the first one (in flight, or already delivered)
            batch.digest = f"{batch.digest}#{repeat}"
        return batch


class _OpenBatch:
    """A batch being filled: its objects, their JSON, and the body bytes used so far."""

    __slots__ = ("items", "template", "texts", "used")

    def __init__(self, template: BodyTemplate) -> None:
        self.template = template
        self.items: list[Deliverable] = []
        self.texts: list[str] = []
        self.used = template.overhead

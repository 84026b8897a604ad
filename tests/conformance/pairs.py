"""The corpus: documented Braze request/answer pairs (see :mod:`tests.conformance.corpus`).

Sources are named in each pair. ``RS`` is the RudderStack repository ``rudderlabs/rudder-transformer``
whose Braze test fixtures hold answers recorded from live Braze (facts carry over; no code is
copied); ``DOCS`` is ``braze-inc/braze-docs``. Where a case is required by the verdict table but
Braze documents nothing (a 422, a truncated body…), the source says so and names the sandbox fault
that produces it.
"""

from __future__ import annotations

from tests.conformance.corpus import ConformancePair
from tests.conformance.pairs_other import OTHER_PAIRS, TRIGGER_PAIRS
from tests.conformance.pairs_track import TRACK_PAIRS

#: Every pair, ``/users/track`` first.
PAIRS: tuple[ConformancePair, ...] = (*TRACK_PAIRS, *TRIGGER_PAIRS, *OTHER_PAIRS)

"""What Braze's final answer to a batch means for the ledger: one state, and what to record with it.

The engine's sender threads call :func:`outcome` as soon as an answer is in and write it to the
ledger; the calling thread then does the accounting from the same record.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_aiq_braze.braze.responses import BrazeResponse, Verdict
from airflow_provider_aiq_braze.delivery.batching import Batch
from airflow_provider_aiq_braze.delivery.ledger import ACCEPTED, NOT_SENT, REFUSED, UNCERTAIN

#: Verdicts after which the batch was not sent and the run stops.
STOPPING = (Verdict.SETUP_ERROR, Verdict.RETRY, Verdict.RATE_LIMITED)


def outcome(batch: Batch, response: BrazeResponse, array: str) -> tuple[str, dict[str, Any]]:
    """The ledger state of a batch after Braze's final answer, and what to record with it.

    :param batch: the batch sent.
    :param response: Braze's final answer.
    :param array: the objects' array in the body (how Braze names them in ``errors``).
    :return: ``(state, info)``; ``info["rejected"]`` maps the refused objects' indexes to Braze's
        reason (accepted and refused batches), ``info["reason"]`` says why for the others.
    """
    verdict = response.verdict
    named = {i: why for i, why in response.errors_by_index(array).items() if 0 <= i < len(batch.items)}
    if verdict is Verdict.ACCEPTED:
        info: dict[str, Any] = {"rejected": named, "status": response.status}
        if response.items_unknown:
            info.update(items_unknown=True, reason=response.reason)
        if response.dispatch_id:
            info["dispatch_id"] = response.dispatch_id
        return ACCEPTED, info
    if verdict in (Verdict.REFUSED_ITEMS, Verdict.REFUSED):
        if not (verdict is Verdict.REFUSED_ITEMS and named and batch.parent is None):
            message = response.message or response.reason or f"HTTP {response.status}"
            unnamed = (
                "Braze refused the request again after it was re-sent without the objects it named: "
                + message
                if named
                else f"Braze refused the whole request (HTTP {response.status}): {message}"
            )
            named = {i: named.get(i, unnamed) for i in range(len(batch.items))}
        return REFUSED, {"rejected": named, "status": response.status, "reason": response.reason}
    if verdict in STOPPING:
        reason = response.reason or response.message or verdict.value
        return NOT_SENT, {"status": response.status, "reason": reason}
    return UNCERTAIN, {"reason": response.reason or "no response"}

"""``BrazeCampaignTriggerOperator``: send an API-triggered campaign to a staged segment."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from airflow_provider_aiq_braze import arguments
from airflow_provider_aiq_braze.braze.limits import (
    MAX_REQUEST_BYTES,
    SEND_ID_MAX_LENGTH,
    TRIGGER_MAX_RECIPIENTS,
)
from airflow_provider_aiq_braze.braze.rules import properties_problem
from airflow_provider_aiq_braze.contracts.recipients import RecipientContract
from airflow_provider_aiq_braze.delivery.batching import Batch, BodyTemplate
from airflow_provider_aiq_braze.delivery.engine import RequestSpec
from airflow_provider_aiq_braze.delivery.input import read_input
from airflow_provider_aiq_braze.delivery.paths import RunPaths
from airflow_provider_aiq_braze.delivery.progress import Progress
from airflow_provider_aiq_braze.delivery.records import BatchRows, Deliverable, Record, Rejected, Skipped
from airflow_provider_aiq_braze.delivery.result import DeliveryCounts
from airflow_provider_aiq_braze.hooks.braze import BrazeHook
from airflow_provider_aiq_braze.operators.base import BrazeDeliveryOperator
from airflow_provider_aiq_braze.staging import ROW_NUMBER_COLUMN, StagedBatch, StagedFile
from airflow_provider_aiq_braze.storage import dumps

if TYPE_CHECKING:
    from airflow.sdk import Context


class BrazeCampaignTriggerOperator(BrazeDeliveryOperator):
    """Trigger an API-triggered campaign for every recipient of a staged segment, at most once.

    Every argument of :class:`~airflow_provider_aiq_braze.operators.base.BrazeDeliveryOperator`
    applies, with ``batch_size`` at most 50 (Braze's recipients per request), plus:

    :param campaign_id: the campaign, when the file has no campaign column (templated).
    :param trigger_properties: properties for every recipient; a recipient's own override them (templated).
    :param send_id: a ``send_id`` to group the sends in Braze's analytics (templated).
    :param create_send_id: obtain a ``send_id`` per campaign from ``/sends/id/create`` (Braze allows
        100 per day); the id is kept with the ledger so a retry reuses it.
    :param send_to_existing_only: only message users who already exist (Braze's default).
    :param attribute_columns: columns applied to the recipient's profile before the send.
    :param external_id_column: the ``external_id`` column (sent as ``external_user_id``).
    :param braze_id_column: the ``braze_id`` column.
    :param campaign_id_column: the column naming each row's campaign.
    :param trigger_properties_column: a column holding a JSON object of trigger properties.
    :param property_columns: the columns that become trigger properties (default: every other column).
    :param identifier_preference: which identifier to send when a row has both.
    """

    template_fields: Sequence[str] = (
        *BrazeDeliveryOperator.template_fields,
        "campaign_id",
        "trigger_properties",
        "send_id",
    )
    kind: ClassVar[str] = "campaigns"
    max_batch_size: ClassVar[int] = TRIGGER_MAX_RECIPIENTS

    def __init__(
        self,
        *,
        campaign_id: str | None = None,
        trigger_properties: Mapping[str, Any] | None = None,
        send_id: str | None = None,
        create_send_id: bool = False,
        send_to_existing_only: bool = True,
        attribute_columns: Sequence[str] = (),
        external_id_column: str = "external_id",
        braze_id_column: str = "braze_id",
        campaign_id_column: str | None = "campaign_id",
        trigger_properties_column: str | None = "trigger_properties",
        property_columns: Sequence[str] | None = None,
        identifier_preference: Sequence[str] = ("external_id", "braze_id"),
        batch_size: int = TRIGGER_MAX_RECIPIENTS,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        self.campaign_id = campaign_id
        self.trigger_properties = trigger_properties
        self.send_id = send_id
        self.create_send_id = create_send_id
        # the contract checks its (non-templated) arguments; the campaign comes once rendered
        self.contract = RecipientContract(
            external_id_column=external_id_column,
            braze_id_column=braze_id_column,
            campaign_id_column=campaign_id_column,
            trigger_properties_column=trigger_properties_column,
            property_columns=property_columns,
            attribute_columns=attribute_columns,
            identifier_preference=identifier_preference,
            send_to_existing_only=send_to_existing_only,
        )
        self.check_arguments(rendered=False)
        self._hook: BrazeHook | None = None
        self._send_ids: dict[str, str | None] = {}
        self._send_ids_path: Any = None
        self._campaigns: dict[str, dict[str, Any]] = {}

    def argument_checks(self) -> dict[str, Callable[[Any], Any]]:
        """The base operator's checks, plus the campaign, its trigger properties and ``send_id``."""
        return {
            **super().argument_checks(),
            "campaign_id": lambda v: arguments.identifier_argument("campaign_id", v),
            "trigger_properties": self._checked_trigger_properties,
            "send_id": _checked_send_id,
            "create_send_id": lambda v: arguments.flag("create_send_id", v),
        }

    def check_arguments(self, *, rendered: bool = True) -> None:
        """Check every argument (see the base class), and that ``send_id`` and ``create_send_id`` exclude
        each other.

        :param rendered: whether templated arguments hold their rendered values.
        """
        super().check_arguments(rendered=rendered)
        if getattr(self, "send_id", None) and getattr(self, "create_send_id", False):
            raise arguments.ArgumentError(
                "send_id",
                self.send_id,
                "None when create_send_id=True (give either send_id or create_send_id)",
            )

    # -- engine hooks ------------------------------------------------------------------------

    def prepare(self, hook: BrazeHook | None, context: Context, paths: RunPaths) -> None:
        """Check the templated arguments; keep the hook and the remembered send ids.

        :param hook: the Braze hook, ``None`` in a dry run.
        :param context: the task context.
        :param paths: the run's files.
        """
        self._hook = hook
        self._campaigns = {}
        self.contract.campaign_id = self.campaign_id or None
        self._send_ids_path = paths.ledger.with_name(paths.ledger.stem + ".send_ids.json")
        self._send_ids = {}
        if self.create_send_id and self._send_ids_path.exists():
            self._send_ids = json.loads(self._send_ids_path.read_text())

    def request_spec(self) -> RequestSpec:
        """Recipients go 50 per ``/campaigns/trigger/send`` request, one campaign per request."""
        return RequestSpec(
            endpoint="/campaigns/trigger/send",
            array="recipients",
            max_objects=self.batch_size,
            max_bytes=MAX_REQUEST_BYTES,
            template_for=self._template_for,
            safe_to_retry=False,
        )

    def records(self, files: list[StagedFile], progress: Progress) -> Iterator[Record]:
        """One record per staged row; a repeated recipient of a campaign is skipped.

        Each staged batch is checked and serialized a batch at a time where it can be
        (:meth:`RecipientContract.encode_batch`); the other rows go through
        :meth:`RecipientContract.to_recipient`. Both give the same bodies for the same rows.

        :param files: the located input files.
        :param progress: to report each finished file.
        """
        seen: set[str] = set()
        for item in read_input(files, progress, any_of_columns=[self.contract.identifier_columns]):
            if isinstance(item, Rejected):
                yield item
            else:
                yield from self._batch_records(item, seen)

    def _batch_records(self, staged: StagedBatch, seen: set[str]) -> Iterator[Record]:
        """The recipients of one staged batch: the columnar path, the row path for the other rows.

        :param staged: the batch.
        :param seen: the recipients met so far in this run, by :meth:`RecipientContract.recipient_key`.
        """
        contract = self.contract
        texts, campaigns, keys = contract.encode_batch(staged.columns)
        if isinstance(staged.exact, pa.Array):  # JSON Lines rows whose columns do not hold them as they are
            texts = [t if exact else None for t, exact in zip(texts, staged.exact.to_pylist(), strict=True)]
        raw = BatchRows(staged.batch, ROW_NUMBER_COLUMN)
        uri = staged.file
        for index, number in enumerate(staged.row_numbers()):
            text = texts[index]
            if text is not None:  # positional: the fastest way to build one per row
                yield _once(
                    seen,
                    str(keys[index]),
                    Deliverable(uri, number, None, str(campaigns[index]), 1, raw, text),
                )
                continue
            data = staged.row(index)
            mapped = contract.to_recipient(data)
            if isinstance(mapped, str):
                yield Rejected(uri, number, mapped, data)
                continue
            campaign, recipient = mapped
            key = contract.recipient_key(campaign, recipient)
            yield _once(seen, key, Deliverable(uri, number, recipient, group=campaign, raw=data))

    def on_accepted(self, batch: Batch, dispatch_id: str | None, earlier: bool) -> None:
        """Record the recipients and ``dispatch_id`` of each accepted batch per campaign.

        :param batch: the batch.
        :param dispatch_id: Braze's ``dispatch_id``.
        :param earlier: whether it was accepted in an earlier attempt.
        """
        summary = self._campaigns.setdefault(
            batch.group, {"recipients_sent": 0, "recipients_sent_earlier": 0, "dispatch_ids": []}
        )
        summary["recipients_sent_earlier" if earlier else "recipients_sent"] += len(batch.items)
        if dispatch_id:
            summary["dispatch_ids"].append(dispatch_id)

    def finish(self, counts: DeliveryCounts, result: dict[str, Any], paths: RunPaths) -> None:
        """Add ``campaigns`` (per campaign: recipients sent, dispatch ids) to the result.

        :param counts: the run's counts.
        :param result: the result being built.
        :param paths: the run's files.
        """
        result["campaigns"] = self._campaigns
        result["send_ids"] = {k: v for k, v in self._send_ids.items() if v}

    # -- helpers -----------------------------------------------------------------------------

    def _checked_trigger_properties(self, value: Any) -> dict[str, Any] | str | None:
        """``trigger_properties``: a JSON object (a dict, or its text once rendered) Braze accepts."""
        if value is None:
            return None
        properties = arguments.json_object("trigger_properties", value)
        problem = properties_problem(
            properties,
            max_bytes=self.contract.properties_max_bytes,
            reserved=frozenset(),
            what="trigger property",
        )
        if problem:
            raise arguments.ArgumentError(
                "trigger_properties", value, f"properties Braze accepts ({problem})"
            )
        return properties

    def _top_level_properties(self) -> dict[str, Any]:
        return dict(self.trigger_properties) if isinstance(self.trigger_properties, Mapping) else {}

    def _template_for(self, campaign: str) -> BodyTemplate:
        head: dict[str, Any] = {"campaign_id": campaign}
        send_id = self._send_id_for(campaign)
        if send_id:
            head["send_id"] = send_id
        top = self._top_level_properties()
        if top:
            head["trigger_properties"] = top
        prefix = dumps(head)[:-1] + ',"recipients":['
        return BodyTemplate(prefix=prefix, suffix="]}")

    def _send_id_for(self, campaign: str) -> str | None:
        if self.send_id:
            return self.send_id
        if not self.create_send_id:
            return None
        if campaign not in self._send_ids:
            if self._hook is None:  # dry run: nothing is created
                self.log.info("Dry run: a send_id would be created for campaign %s", campaign)
                self._send_ids[campaign] = None
                return None
            created = self._hook.create_send_id(campaign).send_id
            self._send_ids[campaign] = created
            self._send_ids_path.parent.mkdir(parents=True, exist_ok=True)
            self._send_ids_path.write_text(json.dumps(self._send_ids))
            self.log.info("Created send_id %s for campaign %s (Braze allows 100 per day)", created, campaign)
        return self._send_ids[campaign]


def _once(seen: set[str], key: str, recipient: Deliverable) -> Record:
    """The recipient, or a skip when the same recipient of the same campaign came before in this run.

    :param seen: the recipients met so far (updated).
    :param key: this recipient's key.
    :param recipient: its deliverable.
    """
    if key in seen:
        return Skipped("duplicate recipient for the same campaign in this run")
    seen.add(key)
    return recipient


def _checked_send_id(value: Any) -> str | None:
    """``send_id``: 1 to 64 ASCII characters, or ``None``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.isascii() and len(value) <= SEND_ID_MAX_LENGTH:
        return value
    raise arguments.ArgumentError("send_id", value, f"1 to {SEND_ID_MAX_LENGTH} ASCII characters, or None")

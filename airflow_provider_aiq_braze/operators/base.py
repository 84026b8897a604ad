"""What every Braze delivery operator shares: arguments, paths, the run, the result."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowException, AirflowFailException  # type: ignore[no-redef]
from airflow.sdk import Asset, BaseOperator, ObjectStoragePath, XComArg

from airflow_provider_aiq_braze import arguments
from airflow_provider_aiq_braze.arguments import ContractError
from airflow_provider_aiq_braze.braze.errors import BrazeConfigError
from airflow_provider_aiq_braze.braze.limits import MAX_REQUEST_BYTES
from airflow_provider_aiq_braze.braze.responses import BrazeResponse
from airflow_provider_aiq_braze.delivery.batching import Batch, BodyTemplate
from airflow_provider_aiq_braze.delivery.engine import DeliveryEngine, DeliveryFailed, RequestSpec
from airflow_provider_aiq_braze.delivery.input import total_size
from airflow_provider_aiq_braze.delivery.ledger import Ledger, LedgerError
from airflow_provider_aiq_braze.delivery.paths import RunPaths, TaskIdentity, default_state_root, run_paths
from airflow_provider_aiq_braze.delivery.progress import Progress
from airflow_provider_aiq_braze.delivery.records import Record
from airflow_provider_aiq_braze.delivery.result import DeliveryCounts
from airflow_provider_aiq_braze.hooks.braze import BrazeHook
from airflow_provider_aiq_braze.staging import (
    COMPRESSIONS,
    FORMATS,
    StagedFile,
    StagingError,
    bytes_read,
    locate,
)
from airflow_provider_aiq_braze.storage import JsonlWriter, StorageError, check_writable

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Default for ``max_reject_ratio``: fail the task when more than 5% of the rows are rejected.
DEFAULT_MAX_REJECT_RATIO = 0.05


class BrazeDeliveryOperator(BaseOperator):
    """Base of the operators that read staged ActionIQ output and deliver it to Braze.

    :param source: the staged input: a path, a list of paths, a directory or a glob, on any storage
        ``ObjectStoragePath`` reaches (templated).
    :param format: ``csv``, ``jsonl`` or ``parquet``; detected from the file names when omitted.
    :param compression: ``gzip``, ``None`` or ``"auto"`` (from the file names).
    :param source_conn_id: the connection for remote input storage.
    :param braze_conn_id: the Braze connection.
    :param state_path: the folder for ledgers, rejects and state (templated; any
        ``ObjectStoragePath``; default ``$AIRFLOW_HOME/aiq_braze_state``).
    :param state_conn_id: the connection for a remote ``state_path``.
    :param rejects_path: where to write rejected rows (templated; default under ``state_path``).
    :param batch_size: the most objects per request.
    :param max_workers: concurrent requests.
    :param max_reject_ratio: fail the task, after delivering every valid row, when more than this
        share of the rows was rejected.
    :param dry_run: validate and write the exact request bodies to a file instead of sending.
    :param force: ignore the ledger and send everything again.
    :param resend_uncertain: resend batches whose earlier outcome is unknown.
    :param progress_interval: seconds between progress lines in the task log.
    :param braze_asset: the Asset standing for the Braze target, added to ``outlets``; on success its
        event carries the run's counts in ``extra`` (default :func:`default_braze_asset` of the operator's
        kind and ``braze_conn_id``). Pass ``inlets`` to name the staged input yourself; by default a
        plain (non-templated) ``source`` becomes the inlet.
    """

    template_fields: Sequence[str] = ("source", "state_path", "rejects_path")
    #: The operator's kind, part of the ledger key.
    kind: ClassVar[str] = "delivery"
    #: The largest ``batch_size`` Braze accepts for this operator's endpoint.
    max_batch_size: ClassVar[int] = 75

    def __init__(
        self,
        *,
        source: str | Sequence[str],
        format: str | None = None,
        compression: str | None = "auto",
        source_conn_id: str | None = None,
        braze_conn_id: str = "braze_default",
        state_path: str | None = None,
        state_conn_id: str | None = None,
        rejects_path: str | None = None,
        batch_size: int = 75,
        max_workers: int = 16,
        max_reject_ratio: float = DEFAULT_MAX_REJECT_RATIO,
        dry_run: bool = False,
        force: bool = False,
        resend_uncertain: bool = False,
        progress_interval: float = 30.0,
        braze_asset: Asset | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.format = format
        self.compression = compression
        self.source_conn_id = source_conn_id
        self.braze_conn_id = braze_conn_id
        self.state_path = state_path
        self.state_conn_id = state_conn_id
        self.rejects_path = rejects_path
        self.batch_size = batch_size
        self.max_workers = max_workers
        self.max_reject_ratio = max_reject_ratio
        # BaseOperator already has a dry_run() method: keep the flag under another name
        self.is_dry_run = dry_run
        self.force = force
        self.resend_uncertain = resend_uncertain
        self.progress_interval = progress_interval
        if braze_asset is not None and not isinstance(braze_asset, Asset):
            raise arguments.ArgumentError("braze_asset", braze_asset, "an airflow.sdk.Asset or None")
        self.check_arguments(rendered=False)  # subclasses check again once they set their own
        # Lineage: the staged input is an inlet, the Braze target an outlet.
        self.braze_asset = braze_asset or default_braze_asset(self.kind, self.braze_conn_id)
        if self.braze_asset not in self.outlets:
            self.outlets = [*self.outlets, self.braze_asset]
        if not self.inlets:
            self.inlets = source_assets(self.source)

    # -- arguments ---------------------------------------------------------------------------

    def argument_checks(self) -> dict[str, Callable[[Any], Any]]:
        """The check of each argument, by the attribute holding it.

        The checks are those of :mod:`~airflow_provider_aiq_braze.arguments`; subclasses add theirs.
        """
        a = arguments
        return {
            "source": a.source,
            "format": lambda v: a.choice("format", v, (None, *FORMATS)),
            "compression": lambda v: a.choice("compression", v, COMPRESSIONS),
            "source_conn_id": lambda v: a.text("source_conn_id", v, optional=True, what="a connection id"),
            "braze_conn_id": lambda v: a.text("braze_conn_id", v, what="a connection id"),
            "state_path": lambda v: a.storage_path("state_path", v),
            "state_conn_id": lambda v: a.text("state_conn_id", v, optional=True, what="a connection id"),
            "rejects_path": lambda v: a.storage_path("rejects_path", v),
            "batch_size": lambda v: a.whole_number("batch_size", v, minimum=1, maximum=self.max_batch_size),
            "max_workers": lambda v: a.whole_number("max_workers", v, minimum=1),
            "max_reject_ratio": lambda v: a.number("max_reject_ratio", v, minimum=0, maximum=1),
            "is_dry_run": lambda v: a.flag("dry_run", v),
            "force": lambda v: a.flag("force", v),
            "resend_uncertain": lambda v: a.flag("resend_uncertain", v),
            "progress_interval": lambda v: a.number("progress_interval", v, minimum=0.001),
        }

    def check_arguments(self, *, rendered: bool = True) -> None:
        """Check every argument and keep its normalised value.

        Called by the constructor (``rendered=False``: a templated argument given as text, or as
        an XComArg, is checked once Airflow rendered it) and after Airflow renders the templates,
        before anything is read or sent.

        :param rendered: whether templated arguments hold their rendered values.
        :raises ArgumentError: naming the argument, what was given and what is accepted.
        """
        for attribute, check in self.argument_checks().items():
            value = getattr(self, attribute, _NOT_SET)
            if value is _NOT_SET:
                continue  # a subclass sets it after the base constructor, and checks it then
            if not rendered and attribute in self.template_fields and _resolved_later(value):
                continue
            setattr(self, attribute, check(value))

    def check_locations(self) -> None:
        """Refuse, before anything is read or sent, a ``state_path`` or ``rejects_path`` that cannot be
        written (nothing is created): the message names the argument and the fix.

        :raises StorageError: see :func:`~airflow_provider_aiq_braze.storage.check_writable`.
        """
        state = self.state_path or default_state_root()
        check_writable(state, argument="state_path", conn_id=self.state_conn_id)
        if self.rejects_path:
            check_writable(
                self.rejects_path, argument="rejects_path", conn_id=self.state_conn_id, is_file=True
            )

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render the templated arguments, then check them (a bad value fails the task without retry).

        :param context: the task context.
        :param jinja_env: the Jinja environment.
        """
        super().render_template_fields(context, jinja_env)
        try:
            self.check_arguments()
        except ContractError as exc:
            raise AirflowFailException(str(exc)) from None
        self._rendered_and_checked = True

    # -- what subclasses provide -------------------------------------------------------------

    def request_spec(self) -> RequestSpec:
        """How this operator's objects become requests."""
        raise NotImplementedError

    def records(self, files: list[StagedFile], progress: Progress) -> Iterator[Record]:
        """Turn the staged files into records, in a deterministic order.

        :param files: the located input files.
        :param progress: to report each finished file.
        """
        raise NotImplementedError

    def prepare(self, hook: BrazeHook | None, context: Context, paths: RunPaths) -> None:
        """Called before delivery starts (e.g. to keep the hook for creating a ``send_id``).

        :param hook: the Braze hook, ``None`` in a dry run.
        :param context: the task context.
        :param paths: the run's files.
        """

    def finish(self, counts: DeliveryCounts, result: dict[str, Any], paths: RunPaths) -> None:
        """Called after a complete delivery, before the result is returned; may add to ``result``.

        :param counts: the run's counts.
        :param result: the result being built.
        :param paths: the run's files.
        """

    # -- the run -----------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Read, validate, batch, send, record, and return the run's accounting."""
        started = time.monotonic()
        try:
            if not getattr(self, "_rendered_and_checked", False):  # execute called directly, unrendered
                self.check_arguments()
            self.check_locations()
        except (ContractError, StorageError) as exc:
            raise AirflowFailException(str(exc)) from None
        try:
            files = locate(
                self.source, conn_id=self.source_conn_id, format=self.format, compression=self.compression
            )
        except StagingError as exc:
            raise AirflowException(str(exc)) from None
        identity = task_identity(context)
        paths = run_paths(
            identity,
            state_path=self.state_path,
            state_conn_id=self.state_conn_id,
            rejects_path=self.rejects_path,
            uris=[f.uri for f in files],
            kind=self.kind,
        )
        self.log.info("Reading %d staged file(s); ledger %s", len(files), paths.ledger)
        try:
            hook = (
                None
                if self.is_dry_run
                else BrazeHook(braze_conn_id=self.braze_conn_id, max_connections=self.max_workers)
            )
            if hook is not None:
                hook.get_conn()  # an unusable connection fails here, before anything is read or sent
            self.prepare(hook, context, paths)
            progress = Progress(
                self.log,
                total_bytes=total_size(files),
                interval=self.progress_interval,
                bytes_read=bytes_read,
            )
            engine = self._engine(hook, identity, paths, progress)
            counts = engine.run(self.records(files, progress))
        except (BrazeConfigError, ContractError, LedgerError) as exc:
            raise AirflowFailException(str(exc)) from None
        except StagingError as exc:
            raise AirflowException(str(exc)) from None
        except DeliveryFailed as exc:
            self.log.error("Accounting at failure: %s", exc.counts.invariant_line())
            # a setup error fails without retry: a retry succeeds only once the setup is fixed
            raise (AirflowFailException if exc.setup else AirflowException)(str(exc)) from None
        result: dict[str, Any] = {
            **counts.as_dict(),
            "files": len(files),
            "rejects_path": str(paths.rejects),
            "ledger_path": None if self.is_dry_run else str(paths.ledger),
            "dry_run": self.is_dry_run,
            "dry_run_path": str(paths.dry_run_bodies) if self.is_dry_run else None,
        }
        self.finish(counts, result, paths)
        result["duration_s"] = round(time.monotonic() - started, 3)
        self.log.info("Invariant holds: %s", counts.invariant_line())
        self.log.info("Result: %s", result)
        if counts.rows_read and counts.rejected / counts.rows_read > self.max_reject_ratio:
            raise AirflowFailException(
                f"{counts.rejected} of {counts.rows_read} rows were rejected "
                f"({counts.rejected / counts.rows_read:.1%}, more than max_reject_ratio="
                f"{self.max_reject_ratio:.1%}); every valid row was delivered. See the reasons in "
                f"{paths.rejects}."
            )
        self._record_asset_event(context, result)
        return result

    def _record_asset_event(self, context: Context, result: dict[str, Any]) -> None:
        """Put the run's counts in the ``extra`` of the Braze asset's event (when Airflow emits one).

        :param context: the task context (a plain dict in unit tests: then nothing happens).
        :param result: the run's result.
        """
        outlet_events = context.get("outlet_events")
        if outlet_events is None or self.braze_asset not in self.outlets:
            return
        extra: dict[str, Any] = {k: v for k, v in result.items() if isinstance(v, (bool, int, float, str))}
        outlet_events[self.braze_asset].extra = extra

    def request_guard(self) -> Callable[[], None] | None:
        """What to call right before each request goes on the wire (``None``: nothing). What it
        raises stops the run before that request, e.g. a lost lease on the audience state."""
        return None

    def on_accepted(self, batch: Batch, dispatch_id: str | None, earlier: bool) -> None:
        """Called for each batch Braze accepted, now or in an earlier attempt.

        :param batch: the batch.
        :param dispatch_id: Braze's ``dispatch_id`` for it, if any.
        :param earlier: whether it was accepted in an earlier attempt (found in the ledger).
        """

    def _engine(
        self, hook: BrazeHook | None, identity: TaskIdentity, paths: RunPaths, progress: Progress
    ) -> DeliveryEngine:
        ledger = None
        if not (self.is_dry_run and self.force):
            ledger = Ledger(
                paths.ledger, run_id=identity.run_id, try_number=identity.try_number, fresh=self.force
            )
        return DeliveryEngine(
            self.request_spec(),
            sender=HookSender(hook, guard=self.request_guard()) if hook is not None else None,
            ledger=ledger,
            rejects=JsonlWriter(paths.rejects),
            log=self.log,
            max_workers=self.max_workers,
            dry_run_bodies=JsonlWriter(paths.dry_run_bodies) if self.is_dry_run else None,
            resend_uncertain=self.resend_uncertain,
            progress=progress,
            on_accepted=self.on_accepted,
        )

    @staticmethod
    def users_track_spec(array: str, max_objects: int, *, safe_to_retry: bool) -> RequestSpec:
        """A ``/users/track`` request carrying one array.

        :param array: ``attributes`` or ``events``.
        :param max_objects: the most objects per request.
        :param safe_to_retry: whether an uncertain request may be resent (attribute writes).
        """
        template = BodyTemplate(prefix=f'{{"{array}":[', suffix="]}")
        return RequestSpec(
            endpoint="/users/track",
            array=array,
            max_objects=max_objects,
            max_bytes=MAX_REQUEST_BYTES,
            template_for=lambda _group: template,
            safe_to_retry=safe_to_retry,
        )


_NOT_SET = object()


def _resolved_later(value: Any) -> bool:
    """Whether Airflow gives a templated argument its final value only when the task runs.

    Text is rendered by Jinja (and may come from XCom); an XComArg is resolved; so is a list holding
    a template or an XComArg. Other values (a number, a dict, ``None``) are final as given.

    :param value: the argument's value as given to the constructor.
    """
    if isinstance(value, list | tuple):  # a list of paths: resolved later when any item is templated
        return any(arguments.is_template(item) or isinstance(item, XComArg) for item in value)
    return isinstance(value, str | XComArg)


class HookSender:
    """Adapts :class:`BrazeHook`'s client to the engine's :class:`Sender` protocol.

    :param hook: the Braze hook.
    :param guard: called right before each attempt goes on the wire, before the engine's own
        ``before_send``; what it raises stops that request (see :meth:`BrazeDeliveryOperator.request_guard`).
    """

    def __init__(self, hook: BrazeHook, *, guard: Callable[[], None] | None = None) -> None:
        self._hook = hook
        self._guard = guard

    def send(
        self,
        endpoint: str,
        body: bytes,
        *,
        safe_to_retry: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> BrazeResponse:
        """POST one request body under the client's policy; return its final verdict.

        :param endpoint: the REST path.
        :param body: the JSON body.
        :param safe_to_retry: whether an uncertain outcome may be retried.
        :param before_send: called right before each attempt goes on the wire.
        """
        if self._guard is not None:
            before_send = _then(self._guard, before_send)
        return self._hook.client.send(
            "POST", endpoint, data=body, safe_to_retry=safe_to_retry, before_send=before_send
        )

    @property
    def retries(self) -> int:
        """Retries the hook made so far."""
        return int(self._hook.stats.retries)


def _then(first: Callable[[], None], second: Callable[[], None] | None) -> Callable[[], None]:
    """Call ``first``, then ``second`` (if any)."""

    def both() -> None:
        first()
        if second is not None:
            second()

    return both


def default_braze_asset(kind: str, braze_conn_id: str = "braze_default") -> Asset:
    """The Asset an operator of ``kind`` updates in the workspace behind ``braze_conn_id``.

    Schedule a DAG on it (``schedule=default_braze_asset("audience")``) to run after each completed sync.

    :param kind: the operator's kind: ``audience``, ``events`` or ``campaigns``.
    :param braze_conn_id: the Braze connection.
    """
    return Asset(name=f"braze_{kind}_{braze_conn_id}", uri=f"braze://{braze_conn_id}/{kind}")


def source_assets(source: str | Sequence[str]) -> list[Asset]:
    """Assets for a plain staged source; none when any part is templated or not absolute.

    :param source: the operator's ``source``.
    """
    sources = list(source) if isinstance(source, list | tuple) else [source]
    assets = []
    for item in sources:
        if isinstance(item, ObjectStoragePath):
            item = str(item)
        elif isinstance(item, os.PathLike):
            item = os.fspath(item)
        if not isinstance(item, str) or not item or arguments.is_template(item):
            return []
        if "://" in item:
            uri = item
        elif item.startswith("/"):
            uri = f"file://{item}"
        else:
            return []
        try:
            assets.append(Asset(name=uri, uri=uri))
        except ValueError:  # a URI Airflow's Asset refuses (a reserved scheme, a very long name)
            return []
    return assets


def task_identity(context: Context) -> TaskIdentity:
    """The task instance a run belongs to.

    :param context: the task context.
    """
    ti = context["ti"]
    return TaskIdentity(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=ti.run_id,
        map_index=int(getattr(ti, "map_index", -1) if getattr(ti, "map_index", -1) is not None else -1),
        try_number=int(getattr(ti, "try_number", 1) or 1),
    )

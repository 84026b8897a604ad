"""Which day (or hour) of staged data a DAG run owns: one answer for scheduled, backfill and manual runs.

Scheduled and backfill runs own their data interval. A manual run is triggered *without* a logical
date (Airflow 3: the trigger form's logical date left empty, ``"logical_date": null`` in
``POST /api/v2/dags/{dag_id}/dagRuns``) and names what it owns with a param, ``day``
(``2025-06-02``) or ``hour`` (``2025-06-02T10``). Without a logical date it cannot take the logical
date of a scheduled or backfill run, so it never keeps one from being created, and any number of
manual runs of the same day can exist beside them. Register the functions as macros::

    with DAG(..., params={"day": DAY_PARAM}, user_defined_macros=MACROS):
        source = STAGING + "/audiences/{{ run_day(params, dag_run) }}/"

See ``docs/scheduling.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import Param

#: The ``day`` param of a daily DAG: empty for scheduled and backfill runs.
DAY_PARAM = Param(
    None,
    type=["null", "string"],
    format="date",
    description="Manual runs: the day of staged data to apply, YYYY-MM-DD (no logical date)",
)
#: The ``hour`` param of an hourly DAG: empty for scheduled and backfill runs.
HOUR_PARAM = Param(
    None,
    type=["null", "string"],
    pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}(:00)?$",
    description="Manual runs: the hour of staged data to send, YYYY-MM-DDTHH (no logical date)",
)
_EXAMPLES = {"day": "2025-06-02", "hour": "2025-06-02T10"}


def run_day(params: Mapping[str, Any], dag_run: Any) -> str:
    """The day a run owns, ``YYYY-MM-DD``: the ``day`` param, else the start of the run's data interval.

    :param params: the run's params.
    :param dag_run: the run.
    :raises ValueError: when the param is not a date, or the run has neither the param nor a data
        interval (a manual run triggered without a logical date and without ``day``).
    """
    return _period_start(params, dag_run, "day").strftime("%Y-%m-%d")


def run_hour(params: Mapping[str, Any], dag_run: Any) -> str:
    """The hour a run owns, ``YYYY-MM-DD/HH``: the ``hour`` param, else the start of the run's data interval.

    :param params: the run's params.
    :param dag_run: the run.
    :raises ValueError: as :func:`run_day`, for ``hour``.
    """
    return _period_start(params, dag_run, "hour").strftime("%Y-%m-%d/%H")


#: ``user_defined_macros`` of a DAG using these functions in its templates.
MACROS = {"run_day": run_day, "run_hour": run_hour}


def _period_start(params: Mapping[str, Any], dag_run: Any, name: str) -> datetime:
    value = params.get(name)
    if value:
        try:
            start = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(
                f"The param {name}={value!r} is not a {name} in ISO 8601 form, e.g. {_EXAMPLES[name]}"
            ) from None
        return start if start.tzinfo else start.replace(tzinfo=timezone.utc)
    interval_start: datetime | None = getattr(dag_run, "data_interval_start", None)
    if interval_start is None:
        raise ValueError(
            f"This run has no data interval (a manual run triggered without a logical date) and no "
            f'\'{name}\' param: trigger it with the param {name}, e.g. {{"{name}": "{_EXAMPLES[name]}"}}'
        )
    return interval_start.astimezone(timezone.utc)

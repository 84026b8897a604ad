"""A location that cannot be used is refused before anything is read or sent, with a message naming
the argument that gave it and the fix (the provider's pip package, a path under a file, …)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import NoCredentialsError

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowException, AirflowFailException  # type: ignore[no-redef]

from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox
from airflow_provider_aiq_braze.storage import StorageError, check_writable, explain
from tests.operators.conftest import point_default_connection_at
from tests.reliability._support import context

_NOT_INSTALLED = [
    (scheme, package, module)
    for scheme, package, module in [
        ("gs", "apache-airflow-providers-google", "gcsfs"),
        ("abfs", "apache-airflow-providers-microsoft-azure", "adlfs"),
        ("az", "apache-airflow-providers-microsoft-azure", "adlfs"),
    ]
    if importlib.util.find_spec(module) is None
]


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain-file"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize(("scheme", "package", "module"), _NOT_INSTALLED)
def test_a_scheme_without_its_provider_names_the_pip_package(scheme: str, package: str, module: str) -> None:
    with pytest.raises(StorageError) as caught:
        check_writable(f"{scheme}://bucket/state", argument="state_path")
    message = str(caught.value)
    assert message.startswith(f"state_path '{scheme}://bucket/state' cannot be used: ")
    assert f"pip install '{package}'" in message


def test_an_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(StorageError) as caught:
        check_writable("nosuch://bucket/r.jsonl", argument="rejects_path", is_file=True)
    message = str(caught.value)
    assert message.startswith("rejects_path 'nosuch://bucket/r.jsonl' cannot be used: no installed Airflow ")
    assert "s3:// (Amazon)" in message


def test_a_path_under_a_regular_file(a_file: Path) -> None:
    with pytest.raises(
        StorageError, match=r"^state_path '.*' cannot be used: .*plain-file is a file, not a folder"
    ):
        check_writable(str(a_file / "state"), argument="state_path")
    with pytest.raises(StorageError, match=r"^state_path '.*' cannot be used: it is a file, not a folder"):
        check_writable(str(a_file), argument="state_path")
    with pytest.raises(StorageError, match=r"^rejects_path '.*' cannot be used: it is a directory"):
        check_writable(str(a_file.parent), argument="rejects_path", is_file=True)


def test_an_unwritable_folder() -> None:
    if os.access("/proc/1", os.W_OK):
        pytest.skip("/proc/1 is writable here")
    with pytest.raises(
        StorageError, match=r"^state_path '/proc/1/state' cannot be used: the folder /proc/1 is not"
    ):
        check_writable("/proc/1/state", argument="state_path")


def test_credentials_name_the_connection_argument() -> None:
    message = str(explain(NoCredentialsError(), "s3://b/state", argument="state_path", conn_id=None))
    assert "the worker's default credentials cannot reach it" in message
    assert "Set state_conn_id to an Airflow connection" in message
    source = str(explain(NoCredentialsError(), "s3://b/x.csv", argument="source", conn_id="aws_x"))
    assert "connection 'aws_x' cannot reach it" in source and "Set source_conn_id" in source


def test_a_writable_location_passes(tmp_path: Path) -> None:
    assert check_writable(str(tmp_path / "new" / "state"), argument="state_path").name == "state"


def _operator(kind: str, **kwargs: Any) -> Any:
    if kind == "events":
        return BrazeEventExportOperator(task_id="e", **kwargs)
    if kind == "campaigns":
        return BrazeCampaignTriggerOperator(task_id="c", campaign_id="camp", **kwargs)
    return BrazeAudienceMembershipOperator(task_id="a", snapshot_key="2026-11-28", **kwargs)


@pytest.mark.parametrize("kind", ["events", "campaigns", "audience"])
@pytest.mark.parametrize(
    ("argument", "where"),
    [
        ("state_path", "under-file"),
        ("rejects_path", "under-file"),
        ("state_path", "nosuch"),
        ("source", "under-file"),
    ],
)
def test_operators_refuse_to_start_and_send_nothing(
    kind: str,
    argument: str,
    where: str,
    a_file: Path,
    tmp_path: Path,
    braze_sandbox: BrazeSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point_default_connection_at(braze_sandbox, monkeypatch)
    source = tmp_path / "in.csv"
    source.write_text(
        "event_name,external_id,timestamp,audience_id,split_id\nviewed,u1,2026-11-28T10:00:00Z,A,1\n"
    )
    kwargs: dict[str, Any] = {"source": str(source), "state_path": str(tmp_path / "state")}
    kwargs[argument] = str(a_file / "x.csv") if where == "under-file" else "nosuch://bucket/x.csv"
    op = _operator(kind, **kwargs)
    with pytest.raises(AirflowException) as caught:
        op.execute(context(op.task_id))
    message = str(caught.value)
    assert message.startswith(f"{argument} '"), message
    assert "Traceback" not in message
    if argument != "source":
        assert isinstance(caught.value, AirflowFailException)  # a retry cannot fix it
    assert braze_sandbox.state.requests() == {}
    assert not (tmp_path / "state").exists() or argument == "rejects_path"

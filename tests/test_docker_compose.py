"""docker-compose.yaml and Dockerfile: the structure of Airflow's official compose file, with the
provider built in, the example DAGs and staging mounted, and the Braze sandbox as a service.

No container engine runs in the test environment, so these tests read the files; the stack itself
runs natively in ``tests/e2e/celery`` (PostgreSQL, Redis, two Celery workers). The last tests check
that the pinned environment holds the stack's providers.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_aiq_braze.braze.instances import resolve_rest_base_url
from tests.e2e.celery.compose import interpolate

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def defaults(text: str) -> str:
    """Compose interpolation with every variable unset: ``${NAME:-default}`` → ``default``."""
    return interpolate(text, {})


def test_the_official_services_are_there(services: dict[str, Any]) -> None:
    expected = {"postgres", "redis", "airflow-init", "sandbox", *AIRFLOW_SERVICES}
    assert expected <= set(services)


@pytest.mark.parametrize(("service", "command"), sorted(AIRFLOW_SERVICES.items()))
def test_airflow_services_run_the_built_image(services: dict[str, Any], service: str, command: str) -> None:
    spec = services[service]
    assert spec["command"] == command
    assert spec["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert "healthcheck" in spec and spec["healthcheck"]["test"]
    assert spec["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert spec["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert spec["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
    env = spec["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    mounts = {defaults(v).split(":")[1]: defaults(v).split(":")[0] for v in spec["volumes"]}
    assert mounts["/opt/airflow/dags"] == "./dags"
    assert mounts["/opt/airflow/staging"] == "./staging"
    assert env["AIQ_STAGING_PATH"] == "/opt/airflow/staging"
    assert env["AIQ_STATE_PATH"] in mounts  # shared by every worker on the host


def test_workers_can_scale(services: dict[str, Any]) -> None:
    worker = services["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["depends_on"]["sandbox"] == {"condition": "service_healthy"}
    assert worker["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}


def test_the_braze_connection_points_at_the_sandbox_and_the_hook_accepts_it(services: dict[str, Any]) -> None:
    raw = services["airflow-worker"]["environment"]["AIRFLOW_CONN_BRAZE_DEFAULT"]
    conn = json.loads(defaults(raw))
    assert conn["conn_type"] == "braze"
    assert conn["host"] == "http://sandbox:4010"
    sandbox_command = services["sandbox"]["command"]
    assert conn["password"] == sandbox_command[sandbox_command.index("--api-key") + 1]
    url = resolve_rest_base_url(
        conn["host"],
        allow_custom_host=conn["extra"]["allow_custom_host"],
        allow_insecure_http=conn["extra"]["allow_insecure_http"],
    )
    assert url == "http://sandbox:4010"
    # pointing it at a real workspace is a matter of variables
    real = re.sub(r"\$\{BRAZE_REST_ENDPOINT:-[^}]*\}", "https://rest.iad-01.braze.com", raw)
    real = json.loads(defaults(real.replace("${BRAZE_ALLOW_SANDBOX:-true}", "false")))
    assert real["host"] == "https://rest.iad-01.braze.com"
    assert real["extra"] == {"allow_custom_host": False, "allow_insecure_http": False}


def test_the_sandbox_service(services: dict[str, Any]) -> None:
    sandbox = services["sandbox"]
    command = sandbox["command"]
    assert sandbox["entrypoint"] == "aiq-braze-sandbox"  # the console script, without Airflow's entrypoint
    assert (Path(sys.executable).parent / "aiq-braze-sandbox").exists()
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104 - reachable by the workers
    assert command[command.index("--port") + 1] == "4010"
    assert "4010/_sandbox/health" in " ".join(sandbox["healthcheck"]["test"])
    assert defaults(sandbox["image"]) == defaults(services["airflow-worker"]["image"])


def test_init_migrates_creates_the_user_and_the_pool(services: dict[str, Any]) -> None:
    init = services["airflow-init"]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"
    script = "\n".join(init["command"])
    assert "airflow pools set braze_users_track" in script
    assert services["airflow-worker"]["environment"]["AIQ_BRAZE_POOL"] == "braze_users_track"


def test_every_airflow_container_reads_one_shared_configuration(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    """Each container generating its own airflow.cfg gives each its own JWT secret: the worker's
    first task then fails with 'Invalid auth token' (the api-server logs InvalidSignatureError)."""
    common = compose["x-airflow-common"]
    config = common["environment"]["AIRFLOW_CONFIG"]
    assert config == "/opt/airflow/config/airflow.cfg"
    airflow_services = [n for n, s in services.items() if s.get("image") == common["image"] and "user" in s]
    assert set(AIRFLOW_SERVICES) | {"airflow-init", "airflow-cli", "flower"} <= set(airflow_services)
    for name in airflow_services:
        spec = services[name]
        assert spec["environment"]["AIRFLOW_CONFIG"] == config, name
        mounts = {defaults(v).split(":")[1]: defaults(v).split(":")[0] for v in spec["volumes"]}
        assert mounts["/opt/airflow/config"] == "./config", name
        assert mounts["/opt/airflow/plugins"] == "./plugins", name
        # a secret set per container, or the official file's empty fernet key, would defeat the file
        for variable in (
            "AIRFLOW__API_AUTH__JWT_SECRET",
            "AIRFLOW__API__SECRET_KEY",
            "AIRFLOW__CORE__FERNET_KEY",
        ):
            assert variable not in spec["environment"], (name, variable)


def test_init_writes_and_checks_the_shared_configuration_first(services: dict[str, Any]) -> None:
    script = services["airflow-init"]["command"][1]
    assert services["airflow-init"]["entrypoint"] == "/bin/bash"
    commands = re.findall(r"^\s*/entrypoint airflow (.+?)(?: >/dev/null)?(?: \|\| exit 1)?$", script, re.M)
    assert [c.split()[0] for c in commands] == ["version", "config", "pools"]
    assert commands[1] == "config list"
    check = script.index("jwt_secret:AIRFLOW__API_AUTH__JWT_SECRET")
    assert script.index("airflow config list") < check < script.index("airflow pools set")
    assert "secret_key:AIRFLOW__API__SECRET_KEY" in script
    # written as root: every container's user must be able to read it
    assert re.search(r'chown -R "\$\{AIRFLOW_UID\}:0" /opt/airflow/\{[^}]*config', script)
    for check in ("AIRFLOW_UID", "mem_available", "cpus_available", "disk_available"):
        assert check in script


def test_the_official_extras_are_there(services: dict[str, Any]) -> None:
    flower = services["flower"]
    assert flower["profiles"] == ["flower"] and flower["command"] == "celery flower"
    assert flower["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
    cli = services["airflow-cli"]
    assert cli["profiles"] == ["debug"]
    assert cli["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert cli["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_the_docs_list_every_change_from_the_official_file() -> None:
    doc = (ROOT / "docs" / "docker-compose.md").read_text()
    section = doc[doc.index("## Changes from the official file") :]
    for change in ("Dockerfile", "AIRFLOW__CORE__FERNET_KEY", "LOAD_EXAMPLES", "sandbox", "staging",
                   "aiq-braze-state", "AIRFLOW_CONN_BRAZE_DEFAULT", "pools set", "jwt_secret"):  # fmt: skip
        assert change in section, change


# -- the pinned environment holds the stack the compose file and the docs use ------------------------

STACK_PROVIDERS = (
    "apache-airflow-providers-celery",
    "apache-airflow-providers-postgres",
    "apache-airflow-providers-redis",
    "apache-airflow-providers-fab",
)


@pytest.mark.parametrize(
    "constraints", sorted((ROOT / "constraints").glob("airflow-*.txt")), ids=lambda p: p.name
)
def test_the_constraints_pin_the_stack(constraints: Path) -> None:
    pinned = {
        line.split("==")[0].lower(): line.split("==")[1]
        for line in constraints.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert constraints.name == f"airflow-{pinned['apache-airflow']}.txt"
    for package in (*STACK_PROVIDERS, "asyncpg", "psycopg2-binary", "celery", "redis", "flask-appbuilder"):
        assert package in pinned, package
    assert "airflow-provider-aiq-braze" not in pinned


def test_the_installed_environment_is_consistent_and_holds_the_stack() -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=300, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # what the compose services import: the executor, the auth manager, both PostgreSQL drivers
    for module in (
        "airflow.providers.celery.executors.celery_executor",
        "airflow.providers.fab.auth_manager.fab_auth_manager",
        "airflow.providers.redis.hooks.redis",
        "psycopg2",
        "asyncpg",
    ):
        importlib.import_module(module)


def test_health_checks_of_the_backing_services(services: dict[str, Any]) -> None:
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    named = {
        v.split(":")[0]
        for s in services.values()
        for v in s.get("volumes", [])
        if not v.startswith(("$", "."))
    }
    assert named <= set(compose["volumes"])


def test_dockerfile_installs_the_provider_with_the_constraints() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG AIRFLOW_IMAGE=apache/airflow:3\.3\.2-python3\.11$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\}$", dockerfile, re.M)
    constraints = re.search(r"^ARG CONSTRAINTS=(\S+)$", dockerfile, re.M)
    assert constraints and (ROOT / constraints.group(1)).is_file()
    install = dockerfile[dockerfile.index("RUN pip install") :]
    assert '--constraint "/opt/airflow-provider-aiq-braze/${CONSTRAINTS}"' in install
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install
    assert "COPY --chown=airflow:root . /opt/airflow-provider-aiq-braze" in dockerfile


def test_dockerignore_keeps_what_the_install_needs() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".venv-*", ".git", ".airflow"} <= ignored
    for needed in ("airflow_provider_aiq_braze", "pyproject.toml", "README.md", "constraints"):
        assert needed not in ignored

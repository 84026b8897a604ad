"""``docker-compose.yaml`` read as Compose reads it, and its services run as local processes.

There is no container engine here, so each container becomes a folder standing for its
``/opt/airflow``, where the file's mounts are symlinks: bind mounts to folders of a project folder
(the ``./dags``, ``./logs``, ``./config``… next to the compose file), named volumes to folders of a
volumes folder. Everything else is taken from the file — the environment (``x-airflow-common`` and
the service's own), commands, mounts, health checks and the ``airflow-init`` script — so the file
and the test cannot drift apart. What cannot be the same on one host is changed in one place each:

- service host names in URLs (``postgres``, ``redis``, ``airflow-apiserver``, ``sandbox``) and a
  container's own ``localhost`` ports become 127.0.0.1 and the local ports (:meth:`Container.localize`);
  a URL naming a service the test does not run fails the test;
- ``/opt/airflow`` becomes the container's folder, the image's ``/entrypoint`` a stand-in
  (:data:`ENTRYPOINT`), and each container gets its own ``HOSTNAME``, which Airflow reports as the
  task's host (``[core] hostname_callable``), as in Docker;
- the programs of the image are those of this virtualenv (its ``bin`` comes first on ``PATH``).

Paths that ``airflow-init`` writes into the shared ``airflow.cfg`` (``dags_folder``…) name its own
folder rather than ``/opt/airflow``; its mounts are the same shared folders, so they resolve alike.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
#: The Airflow home of the image, where the compose file mounts everything.
IMAGE_HOME = "/opt/airflow"
#: The programs of the image: this virtualenv's.
BIN = Path(sys.executable).parent
#: Stands for the image's ``/entrypoint`` (``airflow-init`` calls it).
ENTRYPOINT = """#!/usr/bin/env bash
# The image's /entrypoint, as far as airflow-init uses it: migrate the database and create the admin
# user when asked (_AIRFLOW_DB_MIGRATE, _AIRFLOW_WWW_USER_CREATE), then run the command. The image does
# both on every call (they are idempotent); this stand-in does them on the first call only.
set -euo pipefail
if [[ ! -e "$0.done" ]]; then
  if [[ "${_AIRFLOW_DB_MIGRATE:-}" == "true" ]]; then airflow db migrate; fi
  if [[ "${_AIRFLOW_WWW_USER_CREATE:-}" == "true" ]]; then
    airflow users create --role Admin --firstname Airflow --lastname Admin --email admin@example.com \\
      --username "${_AIRFLOW_WWW_USER_USERNAME}" --password "${_AIRFLOW_WWW_USER_PASSWORD}"
  fi
  touch "$0.done"
fi
exec "$@"
"""
#: The ``[core] hostname_callable`` of every container: ``$HOSTNAME``, as Docker sets it.
HOSTNAME_MODULE = "import os\n\n\ndef hostname() -> str:\n    return os.environ['HOSTNAME']\n"

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)
_URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<user>[^@/\s\"']*@)?(?P<host>[A-Za-z0-9_.-]+)(?::(?P<port>\d+))?"
)


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's interpolation: ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``, ``$NAME``, ``$$``.

    :param text: a value of the compose file.
    :param variables: the variables (what ``.env`` and the shell would give).
    """

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        found = variables.get(name)
        if match.group("op") == ":-" and not found:
            return match.group("default")
        if match.group("op") == "-" and found is None:
            return match.group("default")
        return found or ""

    return _VARIABLE.sub(value, text)


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file as YAML (anchors and ``<<`` merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def default_port(scheme: str) -> int:
    """The port a URL of this scheme means when it names none."""
    for name, port in (("postgres", 5432), ("redis", 6379), ("https", 443), ("http", 80)):
        if name in scheme:
            return port
    raise AssertionError(f"no default port known for {scheme}://")


@dataclass(frozen=True)
class Service:
    """One service of the compose file, its values interpolated.

    :param name: the service's name.
    :param spec: its definition (merge keys resolved).
    :param variables: the interpolation variables.
    """

    name: str
    spec: dict[str, Any]
    variables: Mapping[str, str]

    def _text(self, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return interpolate(str(value), self.variables)

    def environment(self) -> dict[str, str]:
        """The service's environment."""
        env = self.spec.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        return {key: self._text(value) for key, value in env.items()}

    def command(self) -> list[str]:
        """The service's command as an argument list."""
        command = self.spec["command"]
        if isinstance(command, str):
            return shlex.split(self._text(command))
        return [self._text(part) for part in command]

    def mounts(self) -> list[tuple[str, str]]:
        """``(source, target)`` of each volume (short syntax)."""
        return [tuple(self._text(v).split(":")[:2]) for v in self.spec.get("volumes", [])]  # type: ignore[misc]

    def healthcheck(self) -> list[str]:
        """The health check's command (``CMD`` or ``CMD-SHELL``)."""
        test = [self._text(part) for part in self.spec["healthcheck"]["test"]]
        if test[0] == "CMD-SHELL":
            return ["sh", "-c", test[1]]
        assert test[0] == "CMD", test
        return test[1:]


@dataclass
class Container:
    """A service run as local processes: its folder stands for ``/opt/airflow``.

    :param service: the compose service.
    :param hostname: its ``HOSTNAME``.
    :param home: its folder.
    :param addresses: ``(service, port)`` of the compose network → local port on 127.0.0.1.
    :param published: this container's own ports (``localhost:PORT`` inside it) → local port.
    :param env: its environment (the compose file's, localized, plus ``AIRFLOW_HOME`` and ``HOSTNAME``).
    """

    service: Service
    hostname: str
    home: Path
    addresses: Mapping[tuple[str, int], int]
    published: Mapping[int, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def localize(self, text: str) -> str:
        """A value of the compose file as this host sees it (service hosts, ``localhost``, paths)."""

        def url(match: re.Match[str]) -> str:
            host, scheme = match.group("host"), match.group("scheme")
            port = int(match.group("port") or default_port(scheme))
            if host == "localhost":
                assert port in self.published, f"{self.service.name} does not publish {port} here: {text}"
                local = self.published[port]
            elif (host, port) in self.addresses:
                local = self.addresses[(host, port)]
            else:
                services = {name for name, _ in self.addresses}
                assert "." in host or host not in services, f"no local address for {host}:{port} in {text}"
                return match.group(0)
            return f"{scheme}://{match.group('user') or ''}127.0.0.1:{local}"

        return _URL.sub(url, text).replace(IMAGE_HOME, str(self.home))

    def argv(self) -> list[str]:
        """The service's command as the container runs it, localized.

        With an ``entrypoint``, that program and the command; otherwise the image's entrypoint rule:
        ``bash`` and ``python`` run as they are, anything else is an ``airflow`` sub-command.
        """
        command = [self.localize(part) for part in self.service.command()]
        entrypoint = self.service.spec.get("entrypoint")
        if entrypoint:
            return [
                *map(_program, shlex.split(entrypoint) if isinstance(entrypoint, str) else entrypoint),
                *command,
            ]
        if command[0] in ("bash", "python"):
            return [_program(command[0]), *command[1:]]
        return [_program("airflow"), *command[command[0] == "airflow" :]]


def _program(name: str) -> str:
    """A program of the image: this virtualenv's if it has one."""
    return str(BIN / name) if (BIN / name).exists() else name


class NativeCompose:
    """The compose file's services as local processes under ``root``.

    :param root: everything goes here: ``project/`` (the bind mounts' sources), ``volumes/``,
        ``containers/<hostname>/`` and ``logs/<hostname>.log``.
    :param variables: the interpolation variables (``.env``).
    :param addresses: ``(service, port)`` → local port on 127.0.0.1, for every service URLs name.
    :param overrides: environment set on top of every Airflow container's (timing knobs).
    """

    def __init__(
        self,
        root: Path,
        *,
        variables: Mapping[str, str],
        addresses: Mapping[tuple[str, int], int],
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.compose = load_compose()
        self.variables = variables
        self.addresses = addresses
        self.overrides = dict(overrides or {})
        self.project = root / "project"
        self.logs = root / "logs"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopped: set[str] = set()
        for folder in (self.project, root / "volumes", self.logs, root / "containers", root / "bin"):
            folder.mkdir(parents=True, exist_ok=True)
        (root / "bin" / "entrypoint").write_text(ENTRYPOINT)
        (root / "bin" / "entrypoint").chmod(0o755)
        (root / "bin" / "container_hostname.py").write_text(HOSTNAME_MODULE)
        # the bind mounts' sources as in a clone: ./dags holds the example DAGs, the rest starts empty
        shutil.copytree(ROOT / "dags", self.project / "dags", ignore=shutil.ignore_patterns("__pycache__"))

    def service(self, name: str) -> Service:
        """A service of the compose file."""
        return Service(name, self.compose["services"][name], self.variables)

    def container(
        self,
        name: str,
        hostname: str,
        published: Mapping[int, int] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Container:
        """Make the folder of one container of ``name``: its mounts and its environment.

        :param name: the service.
        :param hostname: the container's ``HOSTNAME`` (and folder name).
        :param published: its own ports → local ports.
        :param env: set on top of everything else (what differs between processes on one host).
        """
        service = self.service(name)
        home = self.root / "containers" / hostname
        home.mkdir(parents=True, exist_ok=True)
        for source, target in service.mounts():
            assert target.startswith(IMAGE_HOME + "/"), f"{name} mounts outside {IMAGE_HOME}: {target}"
            assert not source.startswith("/"), f"{name} mounts an absolute host path: {source}"
            bind = source.startswith(".")
            shared = (self.project / source).resolve() if bind else self.root / "volumes" / source
            shared.mkdir(parents=True, exist_ok=True)
            link = home / target.removeprefix(IMAGE_HOME + "/")
            if not link.is_symlink():
                link.symlink_to(shared, target_is_directory=True)
        container = Container(service, hostname, home, self.addresses, dict(published or {}))
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW", "AIQ_", "PYTEST"))
        }
        container.env = {
            **base,
            **{key: container.localize(value) for key, value in service.environment().items()},
            "AIRFLOW_HOME": str(home),
            "HOSTNAME": hostname,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "container_hostname.hostname",
            "PYTHONPATH": str(self.root / "bin"),
            "PATH": f"{BIN}{os.pathsep}{base.get('PATH', '/usr/bin:/bin')}",
            **self.overrides,
            **(env or {}),
        }
        return container

    # -- processes --------------------------------------------------------------------------------

    def start(self, container: Container, extra_args: list[str] | None = None) -> subprocess.Popen[bytes]:
        """Start a container's command in its own session; output to ``logs/<hostname>.log``.

        :param container: the container.
        :param extra_args: arguments appended to the command (local ports and names).
        """
        argv = container.argv() + list(extra_args or [])
        log = (self.logs / f"{container.hostname}.log").open("ab")
        process = subprocess.Popen(
            argv,
            cwd=container.home,
            env=container.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[container.hostname] = process
        return process

    def run_init(self, container: Container, timeout: float = 600) -> str:
        """Run ``airflow-init``'s script with bash, as its ``entrypoint: /bin/bash`` does; return its output.

        :param container: the ``airflow-init`` container.
        :param timeout: the most it may take.
        """
        spec = container.service.spec
        assert spec["entrypoint"] == "/bin/bash", spec["entrypoint"]
        command = container.service.command()
        assert command[0] == "-c", command
        script = container.localize(command[1]).replace(
            "/entrypoint ", f"{self.root / 'bin' / 'entrypoint'} "
        )
        done = subprocess.run(
            ["bash", "-c", script], cwd=container.home, env=container.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        output = done.stdout + done.stderr
        (self.logs / f"{container.hostname}.log").write_text(output)
        assert done.returncode == 0, f"airflow-init failed ({done.returncode}):\n{output[-5000:]}"
        return output

    def healthy(self, container: Container) -> bool:
        """Whether the service's compose health check passes now."""
        command = [container.localize(part) for part in container.service.healthcheck()]
        try:
            done = subprocess.run(
                command, cwd=container.home, env=container.env, capture_output=True, timeout=60, check=False
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def wait(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
        """Poll ``check`` until it returns something true; fail (with the logs) on a dead process or timeout.

        :param what: what is awaited (for the message).
        :param check: the check.
        :param timeout: the most to wait.
        :param interval: seconds between checks.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.assert_running()
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f} s waiting for {what}\n{self.tail_logs()}"
                )
            time.sleep(interval)

    def assert_running(self, *, but: frozenset[str] = frozenset()) -> None:
        """Fail if a started process has exited (``but`` those expected to be down)."""
        for hostname, process in self.processes.items():
            if hostname not in but and hostname not in self.stopped and process.poll() is not None:
                raise AssertionError(f"{hostname} exited ({process.returncode})\n{self.tail_logs()}")

    def kill(self, hostname: str) -> list[int]:
        """SIGKILL every process of a container at once (the main one and all it started); their pids.

        :param hostname: the container.
        """
        process = self.processes[hostname]
        self.stopped.add(hostname)
        tree = [psutil.Process(process.pid)]
        with contextlib.suppress(psutil.NoSuchProcess):
            tree += tree[0].children(recursive=True)
        for member in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        psutil.wait_procs(tree, timeout=30)
        return [member.pid for member in tree]

    def stop_all(self) -> None:
        """Stop every process started (SIGTERM to its session, SIGKILL after 30 s), newest first."""
        for process in reversed(list(self.processes.values())):
            _stop(process)

    def tail_logs(self, size: int = 2500) -> str:
        """The end of every container's log."""
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-size:]}"
            for log in sorted(self.logs.glob("*.log"))
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[NativeCompose]:
        """Stop everything on the way out, whatever happened."""
        try:
            yield self
        finally:
            self.stop_all()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process started with ``start_new_session=True`` and everything in its session."""
    members = []
    with contextlib.suppress(psutil.NoSuchProcess):
        members = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    for member in members:  # children that left the session or outlived their parent
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)

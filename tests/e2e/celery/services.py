"""PostgreSQL and Redis from Debian's packages (``make services`` installs them), run on 127.0.0.1.

Each server gets a fresh data folder under a temporary directory and an unusual port, and is
stopped (and waited for) on the way out. PostgreSQL refuses to run as root: when the tests run as
root, ``initdb`` and ``pg_ctl`` run as the ``postgres`` user the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

#: Where Debian installs PostgreSQL's server programs (``/usr/lib/postgresql/<major>/bin``).
POSTGRES_BINARIES = "/usr/lib/postgresql/*/bin"
INSTALL_HINT = "run `make services` (installs redis-server and postgresql from Debian's packages)"


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` folder, or ``None``."""
    found = sorted(
        (Path(p) for p in glob.glob(POSTGRES_BINARIES) if (Path(p) / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def missing_services() -> list[str]:
    """The servers ``make services`` would install that are not there."""
    missing = []
    if postgres_bin() is None:
        missing.append("postgresql")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    return missing


@dataclass(frozen=True)
class Postgres:
    """A running PostgreSQL: ``user``/``password`` own ``database``."""

    port: int
    user: str
    password: str
    database: str


@contextmanager
def running_postgres(*, user: str, password: str, database: str, log: Path) -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster on 127.0.0.1 with one password-protected superuser and database.

    :param user: the superuser (compose's ``POSTGRES_USER``).
    :param password: its password (``POSTGRES_PASSWORD``).
    :param database: the database to create (``POSTGRES_DB``).
    :param log: where the server's log is copied when it stops (the server writes in its own folder).
    """
    binaries = postgres_bin()
    assert binaries is not None, INSTALL_HINT
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="aiq-e2e-postgres-"))
    data, password_file = folder / "data", folder / "password"
    password_file.write_text(password + "\n")
    if as_postgres:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(password_file, "postgres", "postgres")
    port = free_port()

    def run(*command: str | Path, timeout: float = 120) -> None:
        done = subprocess.run(
            [*as_postgres, *map(str, command)], capture_output=True, text=True, timeout=timeout, check=False
        )
        assert done.returncode == 0, f"{command[0]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"

    run(
        binaries / "initdb", "-D", data, "-U", user, f"--pwfile={password_file}",
        "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
    )  # fmt: skip
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c max_connections=300 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    server_log = folder / "server.log"
    run(binaries / "pg_ctl", "-D", data, "-l", server_log, "-o", options, "-w", "-t", "60", "start")
    try:
        run(binaries / "createdb", "-h", folder, "-p", str(port), "-U", user, database)
        yield Postgres(port=port, user=user, password=password, database=database)
    finally:
        run(binaries / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop")
        with suppress(OSError):
            shutil.copyfile(server_log, log)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def running_redis(log: Path) -> Iterator[int]:
    """A Redis on 127.0.0.1 without persistence; yields its port.

    :param log: the server's log file.
    """
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="aiq-e2e-redis-"))
    command = [
        "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
        "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(log),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _redis_answers(port):
            assert process.poll() is None, f"redis-server exited:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "redis-server did not answer PING within 30 s"
            time.sleep(0.1)
        yield port
    finally:
        with suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False

"""The one-command demo (``make demo``): sample ActionIQ output → the example DAGs → a local Braze.

What it does, in order:

1. makes a fresh Airflow home on SQLite (``.airflow/`` in the repository, or ``--home``), with the
   example DAGs of ``dags/`` as its dags folder;
2. writes realistic ActionIQ output to ``<home>/staging`` (:mod:`airflow_provider_aiq_braze.demo_data`):
   three days of audience snapshots with churn, an hour of events, a large export in part files and
   a campaign segment;
3. starts the Braze sandbox (a subprocess on a free loopback port) and points ``braze_default`` at
   it through ``AIRFLOW_CONN_BRAZE_DEFAULT``; creates the users the CRM already knows, because the
   audience sync only updates existing profiles (``update_existing_only=True``, its default);
4. runs the DAGs with ``airflow dags test``: the audience refresh for three consecutive days, the
   hourly event export, the large export (mapped over its part files, in the ``braze_users_track``
   pool the demo creates) and the campaign trigger;
5. prints what Braze received and what it cost, then stops the sandbox. Nothing is left running.

Run it with ``make demo`` or ``python -m airflow_provider_aiq_braze.demo [--home DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import requests

from airflow_provider_aiq_braze.demo_data import DemoData, generate
from airflow_provider_aiq_braze.sandbox.process import start_sandbox_process

#: The repository (``dags/`` lives next to the package in a clone).
REPO = Path(__file__).resolve().parent.parent
#: The sandbox's API key: a local, made-up key (never a real Braze key).
DEMO_API_KEY = "sk-local-demo-key"
#: The pool capping concurrent senders of the large export (see dags/aiq_braze_large_event_export.py).
POOL = "braze_users_track"
POOL_SLOTS = 4
#: A marker that a directory is a demo home, so that it may be wiped on the next run.
HOME_MARKER = ".aiq-braze-demo"
#: The most one ``airflow`` command may take.
COMMAND_TIMEOUT = 300


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return the exit status.

    :param argv: command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_aiq_braze.demo", description=__doc__)
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get("AIQ_DEMO_HOME") or REPO / ".airflow"),
        help="the demo's Airflow home, wiped and rebuilt on each run (default: .airflow/ in the repo)",
    )
    args = parser.parse_args(argv)
    dags = REPO / "dags"
    if not (dags / "aiq_braze_audience_refresh.py").exists():
        print(f"The example DAGs are not at {dags}: run the demo from a clone of the repository.")
        return 2
    started = time.monotonic()
    home = fresh_home(args.home.resolve())
    step(f"Airflow home {home} (SQLite); example DAGs from {dags}")
    data = generate(home / "staging")
    step(
        f"Staged sample ActionIQ output in {home / 'staging'}: {len(data.days)} daily snapshots of "
        f"{len(data.final_membership())} audience splits over {len(data.users)} users, "
        f"{data.events} events, a {data.bulk_parts}-part export, a {len(data.segment)}-user segment"
    )
    with running_sandbox(home) as sandbox:
        airflow = Airflow(home=home, dags=dags, env=demo_env(home, dags, sandbox.base_url))
        step("Migrating the Airflow metadata database")
        airflow.run("db", "migrate")
        airflow.run("pools", "set", POOL, str(POOL_SLOTS), "Concurrent senders to the Braze workspace")
        step(f"Created the pool {POOL} ({POOL_SLOTS} slots)")
        seeded = seed_profiles(sandbox, data.users)
        seed_points = int(sandbox.get("stats")["data_points"])
        step(f"Braze sandbox at {sandbox.base_url}: created the {seeded} users the CRM already knows")

        for day in data.days:
            # A manual run at D+1 03:00 covers the interval [D 03:00, D+1 03:00): day D's snapshot.
            airflow.dags_test("aiq_braze_audience_refresh", at(day + timedelta(days=1), 3))
        event_day, hour = data.event_hour
        airflow.dags_test("aiq_braze_event_export", at(event_day, hour + 1))
        airflow.dags_test("aiq_braze_large_event_export", at(data.days[-1] + timedelta(days=1), 4))
        segment = home / "staging" / "campaigns" / "winback" / data.days[-1].isoformat()
        airflow.dags_test("aiq_braze_campaign_trigger", None, conf={"segment_path": f"{segment}/"})

        ok = report(data, sandbox, airflow, seed_points)
    print(f"\nThe sandbox has stopped; nothing is left running. Took {time.monotonic() - started:.0f} s.")
    print(f"Task logs: {home / 'logs'}; ledgers, rejects and audience state: {home / 'state'}")
    return 0 if ok else 1


# -- set-up ------------------------------------------------------------------------------------


def fresh_home(home: Path) -> Path:
    """Empty the demo home (only one created by the demo, or an empty directory) and mark it.

    :param home: the Airflow home.
    """
    if home.exists():
        if not (home / HOME_MARKER).exists() and any(home.iterdir()):
            raise SystemExit(f"{home} exists and was not created by the demo: refusing to wipe it.")
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / HOME_MARKER).write_text("Created by `make demo`; wiped and rebuilt by every run.\n")
    return home


def demo_env(home: Path, dags: Path, braze_url: str) -> dict[str, str]:
    """The environment of every ``airflow`` command of the demo.

    :param home: the Airflow home.
    :param dags: the dags folder.
    :param braze_url: the sandbox's base URL.
    """
    connection = {"conn_type": "braze", "host": braze_url, "password": DEMO_API_KEY}
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_BRAZE_DEFAULT": json.dumps(connection),
        "AIQ_STAGING_PATH": str(home / "staging"),
        "AIQ_STATE_PATH": str(home / "state"),
        "AIQ_BRAZE_POOL": POOL,
    }


@dataclass
class Sandbox:
    """The Braze sandbox subprocess.

    :param process: the process.
    :param base_url: its REST base URL.
    """

    process: subprocess.Popen[bytes]
    base_url: str

    def get(self, what: str) -> Any:
        """One admin API answer (``/_sandbox/<what>``).

        :param what: the admin path, e.g. ``stats`` or ``profiles``.
        """
        answer = requests.get(f"{self.base_url}/_sandbox/{what}", timeout=30)
        answer.raise_for_status()
        return answer.json()


@contextmanager
def running_sandbox(home: Path) -> Iterator[Sandbox]:
    """Start the sandbox on a free loopback port; stop it (and wait for it) on the way out.

    :param home: the demo home (for the port file and the request journal).
    """
    process, base_url = start_sandbox_process(
        "--api-key",
        DEMO_API_KEY,
        "--journal",
        str(home / "braze-journal.jsonl"),
        port_file=home / "sandbox.port",
        start_new_session=True,
    )
    try:
        yield Sandbox(process, base_url)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process started in its own session, and everything it started.

    :param process: the process.
    """
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def seed_profiles(sandbox: Sandbox, users: list[str]) -> int:
    """Create the users in the sandbox, as they exist in a real workspace before the first sync.

    :param sandbox: the sandbox.
    :param users: the external ids.
    """
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {DEMO_API_KEY}"
        for start in range(0, len(users), 75):
            attributes = [
                {"external_id": uid, "first_name": f"User {uid[2:]}", "home_city": "Springfield"}
                for uid in users[start : start + 75]
            ]
            session.post(f"{sandbox.base_url}/users/track", json={"attributes": attributes}, timeout=30)
    return len(users)


def at(day: date, hour: int) -> datetime:
    """``day`` at ``hour``:00 UTC.

    :param day: the day.
    :param hour: the hour.
    """
    return datetime.combine(day, dt_time(hour), tzinfo=timezone.utc)


# -- running Airflow ---------------------------------------------------------------------------


@dataclass
class Airflow:
    """``airflow`` commands in the demo's home.

    :param home: the Airflow home.
    :param dags: the dags folder.
    :param env: the commands' environment.
    """

    home: Path
    dags: Path
    env: dict[str, str]

    def run(self, *args: str, log_name: str | None = None) -> str:
        """Run ``airflow <args>``; its output goes to ``<home>/demo-logs``; fail loudly on error.

        :param args: the command's arguments.
        :param log_name: the name of the output file (default from the arguments).
        """
        logs = self.home / "demo-logs"
        logs.mkdir(exist_ok=True)
        log = logs / f"{log_name or '-'.join(args[:2])}.log"
        command = [str(Path(sys.executable).parent / "airflow"), *args]
        with log.open("w") as out:
            process = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                status = process.wait(timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                status = -1
            finally:
                stop(process)
        output = log.read_text(errors="replace")
        if status != 0:
            raise SystemExit(f"`airflow {' '.join(args)}` failed ({status}); its output:\n{output[-4000:]}")
        return output

    def dags_test(
        self, dag_id: str, logical_date: datetime | None, conf: dict[str, Any] | None = None
    ) -> None:
        """Run one DAG run with ``airflow dags test`` and print a line about it.

        :param dag_id: the DAG.
        :param logical_date: the run's logical date (``None``: now).
        :param conf: the run's conf.
        """
        args = ["dags", "test", dag_id]
        if logical_date is not None:
            args.append(logical_date.isoformat())
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        started = time.monotonic()
        name = f"{dag_id}-{logical_date:%Y%m%dT%H}" if logical_date else dag_id
        self.run(*args, log_name=name)
        when = f" {logical_date:%Y-%m-%d %H:%M}" if logical_date else ""
        step(f"airflow dags test {dag_id}{when}: success ({time.monotonic() - started:.0f} s)")

    def results(self, dag_id: str, task_id: str) -> list[dict[str, Any]]:
        """The operator results (XCom ``return_value``) of a task, oldest first.

        :param dag_id: the DAG.
        :param task_id: the task.
        """
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute(
                "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
                "ORDER BY timestamp, map_index",
                (dag_id, task_id),
            ).fetchall()
        return [_json(value) for (value,) in rows]

    def asset_events(self) -> list[tuple[str, dict[str, Any]]]:
        """Asset events recorded so far: (asset name, extra)."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute(
                "SELECT asset.name, asset_event.extra FROM asset_event "
                "JOIN asset ON asset.id = asset_event.asset_id ORDER BY asset_event.timestamp"
            ).fetchall()
        return [(name, _json(extra) or {}) for name, extra in rows]


def _json(value: Any) -> Any:
    text = value.decode() if isinstance(value, bytes) else value
    while isinstance(text, str):
        text = json.loads(text)
    return text


# -- the report --------------------------------------------------------------------------------


def report(data: DemoData, sandbox: Sandbox, airflow: Airflow, seed_points: int) -> bool:
    """Print what Braze received, check it against the staged data; ``True`` when all matches.

    :param data: what was staged.
    :param sandbox: the sandbox.
    :param airflow: the demo's Airflow.
    :param seed_points: data points spent creating the users before the demo.
    """
    checks: list[tuple[str, bool]] = []
    profiles = {p["external_id"]: p for p in sandbox.get("profiles")["profiles"] if p.get("external_id")}
    stats = sandbox.get("stats")

    heading("Audience membership -> AIQ_* attributes")
    syncs = airflow.results("aiq_braze_audience_refresh", "sync_membership")
    columns = ("entered", "exited", "unchanged", "data_points", "data_points_full_resync")
    print("  snapshot of    entered   exited  unchanged  data points  full re-sync")
    for day, sync in zip(data.days, syncs, strict=False):
        print(
            f"  {day.isoformat():<12}"
            + "".join(f"{sync[c]:>{w}}" for c, w in zip(columns, WIDTHS, strict=True))
        )
    spent = sum(s["data_points"] for s in syncs)
    full = sum(s["data_points_full_resync"] for s in syncs)
    print(f"  {len(syncs)} nightly syncs spent {spent} data points; a full re-sync every night: {full}")
    if full:
        print(f"  ({1 - spent / full:.0%} fewer: only entries and exits are written; Braze bills each write)")
    checks.append(("three audience syncs ran", len(syncs) == len(data.days)))
    checks.append(("data points spent = the sum of the deltas", stats["data_points"] - seed_points == spent))

    mismatches = 0
    for attribute, members in data.final_membership().items():
        for uid, profile in profiles.items():
            mismatches += (profile["attributes"].get(attribute) is True) != (uid in members)
    checks.append((f"Braze profiles match the {data.days[-1]} snapshot in every split", mismatches == 0))
    print("  Sample profiles (True = member, False = exited):")
    for uid in _sample(data, profiles):
        flags = {k: v for k, v in sorted(profiles[uid]["attributes"].items()) if k.startswith("AIQ_")}
        print(f"    {uid}: " + ", ".join(f"{k}={v}" for k, v in flags.items()))

    heading("Events -> /users/track")
    (hourly,) = airflow.results("aiq_braze_event_export", "send_events")
    day, hour = data.event_hour
    print(
        f"  hourly export {day} {hour:02d}:00: read {hourly['rows_read']}, sent {hourly['sent']}, "
        f"rejected {hourly['rejected']} (reasons in {hourly['rejects_path']})"
    )
    parts = airflow.results("aiq_braze_large_event_export", "send_part")
    print(
        f"  large export: {len(parts)} mapped tasks (one per part file, pool {POOL}), "
        f"sent {sum(p['sent'] for p in parts)} events in {sum(p['requests'] for p in parts)} requests"
    )
    events = sandbox.get("events")["events"]
    names = ", ".join(f"{n} {k}" for k, n in Counter(e.get("name") for e in events).most_common())
    print(f"  Braze now holds {len(events)} events: {names}")
    checks.append(("every valid event arrived once", len(events) == data.events + data.bulk_events))
    checks.append(("the invalid event rows were rejected", hourly["rejected"] == data.bad_events))

    heading("Campaign trigger -> /campaigns/trigger/send")
    (campaign,) = airflow.results("aiq_braze_campaign_trigger", "trigger_campaign")
    messages = [m for d in sandbox.get("dispatches")["dispatches"] for m in d.get("messages", [])]
    for campaign_id, summary in campaign["campaigns"].items():
        print(
            f"  campaign {campaign_id}: {summary['recipients_sent']} recipients in "
            f"{len(summary['dispatch_ids'])} requests (dispatch ids {', '.join(summary['dispatch_ids'])})"
        )
    if messages:
        first = messages[0]
        print(f"  e.g. {first.get('external_id')} messaged with {first.get('trigger_properties')}")
    messaged = sorted(str(m.get("external_id")) for m in messages)
    checks.append(("each segment member messaged exactly once", messaged == data.segment))

    heading("Lineage: Asset events (their extra holds the run's counts)")
    asset_events = airflow.asset_events()
    for name, count in Counter(name for name, _ in asset_events).items():
        print(f"  {name}: {count} event(s)")
    last_sync: dict[str, Any] = next(
        (extra for name, extra in reversed(asset_events) if "audience" in name), {}
    )
    counts = ", ".join(f"{k}={last_sync.get(k)}" for k in ("rows_read", "entered", "exited", "data_points"))
    print(f"  the last audience sync's event: {counts}")

    heading("Braze sandbox totals")
    print(
        f"  {stats['profiles']} profiles; {stats['data_points']} data points in all, {seed_points} of them "
        "creating the users before the demo"
    )
    print(f"  requests: {json.dumps(stats['requests'])}")

    heading("Checks")
    for what, passed in checks:
        print(f"  [{'ok' if passed else 'FAILED'}] {what}")
    return all(passed for _, passed in checks)


#: Column widths of the audience table.
WIDTHS = (9, 9, 11, 13, 14)


def _sample(data: DemoData, profiles: dict[str, Any], size: int = 5) -> list[str]:
    """A few users with AIQ attributes, including one who exited a split."""
    first, last = data.membership[data.days[0]], data.final_membership()
    exited = sorted(uid for attr, ids in first.items() for uid in ids - last[attr])[:2]
    entered = sorted(uid for attr, ids in last.items() for uid in ids - first[attr])[:2]
    stayed = sorted(set.intersection(*(set(ids) for ids in [first["AIQ_2077_1"], last["AIQ_2077_1"]])))[:1]
    return [uid for uid in dict.fromkeys([*exited, *entered, *stayed]) if uid in profiles][:size]


def step(message: str) -> None:
    """Print one progress line.

    :param message: the line.
    """
    print(f"==> {message}", flush=True)


def heading(title: str) -> None:
    """Print a section title.

    :param title: the title.
    """
    print(f"\n{title}")


if __name__ == "__main__":
    sys.exit(main())

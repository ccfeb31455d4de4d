"""``quantrac demo``: the whole pipeline on the embedded default, in one process tree.

Starts the embedded broker and PostgreSQL (unless URLs are configured), migrates, starts a worker
process, feeds simulated readings for every registered source (a few hours of backfill at speed,
then real time), and prints a row count per source every few seconds. Ctrl-C or SIGTERM stops
the children, then the embedded services: nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime

import psycopg

from core.settings import Settings
from core.topics import ensure_topics
from stations.registry import load_registry
from storage.migrate import migrate
from storage.sources import sync_sources
from streams.embedded import terminate_on_exit
from streams.parent_death import die_with_parent
from streams.runtime import child_env, services

log = logging.getLogger(__name__)


def count_rows(conninfo: str) -> dict[str, int]:
    with psycopg.connect(conninfo) as conn:
        return dict(
            conn.execute(
                "SELECT source_id, count(*) FROM readings GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )


async def report_forever(
    settings: Settings, source_ids: Sequence[str], stop: asyncio.Event, every_s: float = 5.0
) -> None:
    assert settings.database_url
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        try:
            counts = await asyncio.to_thread(count_rows, settings.database_url)
        except psycopg.Error as exc:
            print(f"  (database not ready: {exc.__class__.__name__})", flush=True)
            continue
        have = sum(1 for s in source_ids if counts.get(s))
        cells = "  ".join(f"{s}:{counts.get(s, 0)}" for s in source_ids)
        print(
            f"\n[{datetime.now():%H:%M:%S}] {sum(counts.values())} readings stored, "
            f"{have}/{len(source_ids)} sources reporting\n{cells}",
            flush=True,
        )


# Printed at start and in the README: they pass the password policy, but they are public, so
# they exist only on the embedded database (ensure_demo_users).
DEMO_USERS = (
    ("operator", "operator-demo-pass", "operator"),
    ("regulator", "regulator-demo-pass", "regulator"),
    ("admin", "admin-demo-pass", "admin"),
)


def ensure_demo_users(configured: Settings, conninfo: str) -> bool:
    """Create the demo users on the embedded database only, i.e. when ``configured`` (the
    settings before the runtime resolved them) names no database; return whether it did.
    A configured database is someone's real one: public passwords must never reach it."""
    from console.auth import UserError, create_user, hash_password

    if configured.database_url:
        log.warning("QUANTRAC_DATABASE_URL is set: no demo users (use `quantrac users add`)")
        return False
    for username, password, role in DEMO_USERS:
        try:
            create_user(conninfo, username, password, role, created_by="demo")
        except UserError:  # there from an earlier demo run, maybe with an older demo password
            with psycopg.connect(conninfo) as conn:
                conn.execute(
                    "UPDATE users SET password_hash = %s WHERE username = %s"
                    " AND created_by = 'demo'",
                    (hash_password(password), username),
                )
    return True


def demo_notify_env(settings: Settings, resolved: Settings, env: dict[str, str]) -> dict[str, str]:
    """The notifier's environment: QUANTRAC_NOTIFY_RULES as set, else the demo's rules, which
    append every message to DATA_DIR/notifications.jsonl (notify.rules.demo_rules)."""
    if settings.notify_rules:
        return env
    import yaml

    from notify.rules import demo_rules

    path = resolved.data_dir / "notify-demo-rules.yaml"
    sink = (resolved.data_dir / "notifications.jsonl").resolve()
    path.write_text(yaml.safe_dump(demo_rules(sink), sort_keys=False), encoding="utf-8")
    return {**env, "QUANTRAC_NOTIFY_RULES": str(path)}


def run_demo(settings: Settings, backfill_h: float = 1.0) -> None:
    registry = load_registry(settings.registry_path)
    source_ids = sorted(s.id for s in registry.sources)
    # the demo is what embedded services are for: unset URLs start them
    with services(settings.model_copy(update={"embedded": True})) as resolved:
        assert resolved.database_url
        migrate(resolved.database_url)
        sync_sources(resolved.database_url, registry)
        with_users = ensure_demo_users(settings, resolved.database_url)
        ensure_topics(resolved)
        env = child_env(resolved)
        orphan_guard = die_with_parent()  # even a SIGKILLed demo leaves no child running
        worker = subprocess.Popen(
            [sys.executable, "-m", "quantrac_cli", "worker"],
            env=env,
            start_new_session=True,
            preexec_fn=orphan_guard,
        )
        console = subprocess.Popen(
            [sys.executable, "-m", "quantrac_cli", "console"],
            env=env,
            start_new_session=True,
            preexec_fn=orphan_guard,
        )
        # Notifications: the configured rules, or the demo's (to a local file, nothing sent out)
        notices = demo_notify_env(settings, resolved, env)
        notifier = subprocess.Popen(
            [sys.executable, "-m", "quantrac_cli", "notify"],
            env=notices,
            start_new_session=True,
            preexec_fn=orphan_guard,
        )
        # Last months' scheduled reports, stored (mailed only when an SMTP host is configured)
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "quantrac_cli", "scheduler"],
            env=env,
            start_new_session=True,
            preexec_fn=orphan_guard,
        )
        gateway = subprocess.Popen(
            [sys.executable, "-m", "quantrac_cli", "gateway"],
            env=env,
            start_new_session=True,
            preexec_fn=orphan_guard,
        )
        # The simulated dataloggers upload Circular 10 files to the gateway over FTP.
        simulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "quantrac_cli",
                "simulate",
                "--via",
                "ftp",
                "--backfill-hours",
                str(backfill_h),
                "--speed",
                "0",
            ],
            env=env,
            start_new_session=True,
            preexec_fn=orphan_guard,
        )
        users = (
            "\n".join(f"             {u} / {p}" for u, p, _ in DEMO_USERS)
            if with_users
            else "             (no demo users on a configured database: quantrac users add)"
        )
        with terminate_on_exit([simulator, gateway, worker, console, notifier, scheduler]):
            print(
                f"""
quantrac demo: {len(source_ids)} sources, broker {resolved.kafka_url}
  database : psql "{resolved.database_url}"
  try      : SELECT source_id, parameter, max(measured_at), count(*) FROM readings GROUP BY 1, 2;
  console  : http://127.0.0.1:{resolved.console_port}/   (log in as one of these)
{users}
  metrics  : http://127.0.0.1:{resolved.web_port}/metrics
  notices  : {notices["QUANTRAC_NOTIFY_RULES"]} (delivery log: console /notifications)
  reports  : the last months' compliance and quality reports, console /scheduled-reports
  ingest   : ftp://127.0.0.1:{resolved.gateway_ftp_port}  http://127.0.0.1:{resolved.gateway_http_port}/ingest
             (one account per source; passwords in {resolved.data_dir}/ftp_users.json)
  stop     : Ctrl-C
""",
                flush=True,
            )
            asyncio.run(_main(resolved, source_ids, worker))
    print("quantrac demo stopped.", flush=True)


async def _main(
    settings: Settings, source_ids: Sequence[str], worker: subprocess.Popen[bytes]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def watch_worker() -> None:
        while not stop.is_set():
            if worker.poll() is not None:
                log.error("worker exited with code %s; stopping the demo", worker.returncode)
                stop.set()
            await asyncio.sleep(1)

    await asyncio.gather(report_forever(settings, source_ids, stop), watch_worker())

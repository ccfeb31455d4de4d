"""``quantrac forward``: run the forwarder, check the destinations file, show or retry.

- ``run`` (default): migrate, then forward until SIGTERM (streams/forwarding.py);
- ``check``: read the destinations file and list what it says (never a secret);
- ``status``: each destination's backlog, failed files and last error, from the ledger;
- ``retry DEST``: queue the files DEST refused ``max_refusals`` times again.

A wrong file, an unset variable or a missing database is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from psycopg import AsyncConnection

from core.settings import Settings
from stations.forward_config import Destination, ForwardConfigError, load_destinations
from storage import forward_ledger as ledger


def forward_command(args: argparse.Namespace, make_settings: Callable[[], Settings]) -> int:
    settings = make_settings()
    if args.file:
        settings = settings.model_copy(update={"forward_destinations_file": Path(args.file)})
    if args.action == "retry" and not args.destination:
        return _fail("retry needs the destination's name: quantrac forward retry NAME")
    if args.action != "retry" and args.destination:
        return _fail(f"unexpected argument {args.destination!r} (only `retry` takes a name)")
    try:
        destinations = _destinations(settings)
    except ForwardConfigError as exc:
        return _fail(str(exc))
    if args.action == "check":
        for d in destinations:
            print(_describe(d))
        return 0
    if not settings.database_url:
        return _fail("QUANTRAC_DATABASE_URL is not set: the delivery ledger lives in the database")
    if args.action == "run":
        from psycopg import OperationalError
        from psycopg_pool import PoolTimeout

        from streams.forwarding import ForwarderBusy, run_forwarder
        from streams.ports import check_free

        check_free(settings.forward_host, settings.forward_port, "QUANTRAC_FORWARD_PORT")
        try:
            run_forwarder(settings, destinations)
        except ForwarderBusy as exc:
            return _fail(str(exc))
        except (OperationalError, PoolTimeout) as exc:
            return _fail(f"database unreachable: {exc.__class__.__name__}: {exc}")
        return 0
    if args.action == "status":
        return asyncio.run(_status(settings.database_url))
    names = {d.name for d in destinations}
    if args.destination not in names:
        return _fail(
            f"no destination {args.destination!r} (configured: {', '.join(sorted(names))})"
        )
    n = asyncio.run(_retry(settings.database_url, args.destination))
    print(f"{args.destination}: {n} failed file(s) queued again")
    return 0


def _fail(message: str) -> int:
    print(f"quantrac forward: {message}", file=sys.stderr)
    return 2


def _destinations(settings: Settings) -> list[Destination]:
    if settings.forward_destinations_file is None:
        raise ForwardConfigError(
            "QUANTRAC_FORWARD_DESTINATIONS_FILE is unset: name the YAML file of receivers"
        )
    destinations = load_destinations(settings.forward_destinations_file)
    if not destinations:
        raise ForwardConfigError(f"{settings.forward_destinations_file}: no destinations")
    return destinations


def _describe(d: Destination) -> str:
    account = f" as {d.username}" if d.username else ""
    auth = " (bearer token)" if d.token else ""
    since = d.since.isoformat() if d.since else "the day it starts"
    return (
        f"{d.name}: {d.kind} {d.url}{account}{auth}; sources {', '.join(d.sources)}; "
        f"files {d.files}; path {d.path}; since {since}; retry {d.retry_min_s:g}-"
        f"{d.retry_max_s:g} s; set aside after {d.max_refusals} refusals"
    )


async def _status(database_url: str) -> int:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        now = datetime.now(UTC)
        rows = await ledger.states(conn, now)
    if not rows:
        print("no destination has run yet")
    for s in rows:
        age = f"{(now - s.oldest_queued_at).total_seconds():.0f} s" if s.oldest_queued_at else "-"
        line = (
            f"{s.destination}: {s.queued} queued (oldest {age}), {s.failed} failed, "
            f"{s.delivered_24h} delivered in 24 h"
        )
        if s.last_error:
            line += f"; last error on {s.last_error_path}: {s.last_error}"
        print(line)
    return 0


async def _retry(database_url: str, destination: str) -> int:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        return await ledger.requeue_failed(conn, destination, datetime.now(UTC))

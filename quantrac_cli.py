"""``quantrac``: one console command, one sub-command per process or tool."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from streams.settings import Settings


def _settings() -> Settings:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("pgserver", "kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return settings


def cmd_demo(args: argparse.Namespace) -> int:
    from stations.sim_registry import series_for_registry
    from streams.demo import run_demo

    settings = _settings()
    run_demo(settings, series_for_registry(settings), backfill_h=args.backfill_hours)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.runtime import services
    from streams.worker import run_worker

    with services(_settings()) as settings:
        run_worker(settings)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from storage.migrate import migrate
    from streams.runtime import services

    with services(_settings()) as settings:
        assert settings.database_url
        applied = migrate(settings.database_url, retention_days=args.retention_days)
        print("applied: " + (", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "none"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quantrac", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}

    def add(
        name: str, fn: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        commands[name] = fn
        sp = sub.add_parser(name, help=help)
        sp.set_defaults(fn=fn)
        return sp

    demo = add("demo", cmd_demo, "run everything on the embedded default")
    demo.add_argument(
        "--backfill-hours",
        type=float,
        default=3.0,
        help="hours of past readings to send at start (default 3)",
    )
    add("worker", cmd_worker, "run a Faust worker (QA/QC, averaging, thresholds, persistence)")
    db = add("db", cmd_db, "database: `quantrac db migrate`")
    db.add_argument("action", choices=["migrate"])
    db.add_argument(
        "--retention-days",
        type=int,
        default=None,
        help="TimescaleDB retention for readings/averages (default: keep forever)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())

"""``quantrac``: one console command, one sub-command per process or tool."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from core.settings import Settings
from reports.cli_args import add_kinds as add_report_kinds


def _settings() -> Settings:
    """The settings of a process that connects to something; it refuses to start (exit 2) on an
    empty or placeholder secret (streams/secret_check.py)."""
    from streams.secret_check import SecretError, check_secrets

    settings = Settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("pgserver", "kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        check_secrets(settings)
    except SecretError as exc:
        print(f"quantrac: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return settings


def cmd_secrets(args: argparse.Namespace) -> int:
    from streams.secret_check import SecretError, init_env_files, placeholders_in

    env_dir = Path(args.env_dir)
    if not env_dir.is_dir():
        print(f"quantrac secrets: {env_dir} is not a directory", file=sys.stderr)
        return 2
    if args.action == "check":
        weak = placeholders_in(env_dir)
        if args.json:  # names and files only, never values
            import json

            print(json.dumps([{"file": s.file, "key": s.key, "how": s.how} for s in weak]))
            return 1 if weak else 0
        for s in weak:
            print(f"{s.file}: {s.key} ({s.how}) is empty or a placeholder", file=sys.stderr)
        print(f"{env_dir}: " + (f"{len(weak)} secret(s) to set" if weak else "OK"))
        return 1 if weak else 0
    try:
        done = init_env_files(env_dir)
    except SecretError as exc:
        print(f"quantrac secrets: {exc}", file=sys.stderr)
        return 1
    for s in done:  # names only: the values stay in the files
        print(f"set {s.key} ({s.how}) in {env_dir / s.file}")
    if not done:
        print(f"{env_dir}: no placeholder left, nothing changed")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from quantrac_demo import run_demo

    settings = _settings()
    run_demo(settings, backfill_h=args.backfill_hours)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.ports import check_free
    from streams.runtime import services
    from streams.worker import run_worker

    configured = _settings()
    check_free(configured.web_host, configured.web_port, "QUANTRAC_WEB_PORT")
    with services(configured) as settings:
        run_worker(settings)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from storage.migrate import RetentionTooShort, check_retention, migrate
    from streams.runtime import services

    if args.retention_days is not None:
        try:
            check_retention(args.retention_days)  # before any service or database is touched
        except RetentionTooShort as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    with services(_settings()) as settings:
        assert settings.database_url
        applied = migrate(settings.database_url, retention_days=args.retention_days)
        print("applied: " + (", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "none"))
    return 0


def cmd_stations(args: argparse.Namespace) -> int:
    from stations.registry import RegistryError, check_file, format_table, load_registry, to_json

    if args.action == "check":
        if not args.file:
            print("usage: quantrac stations check FILE", file=sys.stderr)
            return 2
        problems = check_file(Path(args.file))
        for line in problems:
            print(line, file=sys.stderr)
        print(f"{args.file}: " + ("OK" if not problems else f"{len(problems)} problem(s)"))
        return 1 if problems else 0
    try:
        registry = load_registry(Settings().registry_path)
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(to_json(registry) if args.json else format_table(registry))
    return 0


def cmd_limits(args: argparse.Namespace) -> int:
    from stations.registry import load_registry
    from thresholds.catalogue import load_catalogue
    from thresholds.limits import (
        LimitResolutionError,
        applicable_regulations,
        catalogue_gaps,
        flow_class_lines,
        format_limits,
        limits_to_json,
        resolve_limits,
    )

    try:
        at = date.fromisoformat(args.at) if args.at else date.today()
    except ValueError:
        print(f"quantrac limits: --at {args.at!r}: a date, YYYY-MM-DD", file=sys.stderr)
        return 2
    registry = load_registry(Settings().registry_path)
    try:
        source = registry.get(args.source)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    catalogue = load_catalogue()
    try:
        limits = resolve_limits(source, catalogue, at)
    except LimitResolutionError as exc:
        print(f"quantrac limits: {exc}", file=sys.stderr)
        return 2
    # issue 19: a stack's limits are compared at its reference O2 (permit, else sector/fuel)
    from thresholds.reference_o2 import settings_of, with_reference

    o2set = settings_of(registry, source)
    if o2set is not None:
        limits = with_reference(limits, o2set.reference, o2set.parameters)
    if not args.json and source.facility:
        # issue 19: which facility, its permit and status, and which regulation applies and why
        facility = registry.facility(source.facility)
        print(f"{source.id} — {source.name}")
        print(f"facility {facility.id}: {facility.name}; permit {facility.permit.text}")
        print(f"status: {facility.status} ({facility.status_basis})")
        for line in applicable_regulations(source, catalogue, at):
            print(f"on {at.isoformat()}: {line}")
        # QCVN 40:2025 writes BOD5/COD/TSS per discharge-flow band: which band and why
        for line in flow_class_lines(source, catalogue, at):
            print(f"discharge-flow class, {line}")
    print(limits_to_json(limits) if args.json else format_limits(limits))
    if not args.json:
        for line in catalogue_gaps(source, catalogue, at):
            print(line)
    if not args.json and source.target_class is not None:
        # QCVN 08:2023 classifies the water body; it sets no limit (thresholds/water_quality.py)
        print(
            f"{source.id}: surface water, classified per local day by QCVN 08:2023 (classes "
            f"A–D) and VN_WQI (Decision 1460/QĐ-TCMT); target class {source.target_class}: a "
            "worse day raises a water quality alert, never a source violation."
        )
    return 0


def cmd_aqi(args: argparse.Namespace) -> int:
    from thresholds.aqi_csv import AqiCsvError, run_aqi_csv

    inp = open(args.file, encoding="utf-8-sig", newline="") if args.file != "-" else sys.stdin  # noqa: SIM115
    try:
        run_aqi_csv(inp, sys.stdout, args.daily, err=sys.stderr)
    except AqiCsvError as exc:
        print(f"quantrac aqi: {exc}", file=sys.stderr)
        return 1
    finally:
        if inp is not sys.stdin:
            inp.close()
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from console.app import run_console
    from streams.ports import check_free
    from streams.runtime import services

    configured = _settings()
    host = args.host or configured.console_host
    check_free(host, configured.console_port, "QUANTRAC_CONSOLE_PORT")
    with services(configured) as settings:
        run_console(settings, host=host)
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from console import user_cli
    from console.auth import UserError
    from streams.runtime import services

    password = None
    try:
        if args.action == "add":
            if len(args.rest) != 1:  # the old `users add NAME PASSWORD ROLE` included
                return user_cli.fail(
                    "usage: quantrac users add NAME ROLE; the password is read from a prompt "
                    "or stdin (--password-stdin), never from the command line, where shell "
                    "history and ps would keep it"
                )
        elif args.rest:
            return user_cli.fail(f"unexpected argument(s) to `users {args.action}`")
        if args.action in ("add", "passwd"):  # before any database is started
            password = user_cli.read_password(sys.stdin, from_stdin=args.password_stdin)
        if args.action != "list" and not args.username:
            return user_cli.fail(f"usage: quantrac users {args.action} NAME")
        with services(_settings()) as settings:
            url = settings.database_url
            assert url
            if args.action == "add":
                assert password is not None
                out = user_cli.add(url, args.username, args.rest[0], password)
            elif args.action == "list":
                out = user_cli.list_text(url, as_json=args.json)
            elif args.action == "disable":
                out = user_cli.disable(url, args.username)
            else:
                assert password is not None
                out = user_cli.passwd(url, args.username, password)
    except UserError as exc:
        return user_cli.fail(str(exc))
    print(out)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from reports.cli import run_parsed
    from reports.service import ReportRequestError

    try:
        path = run_parsed(_settings(), args)
    except ReportRequestError as exc:
        print(f"quantrac report: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from contextlib import ExitStack
    from datetime import datetime

    from core.progress import Progress
    from reports.scheduler import list_stored, run_forever, run_once
    from stations.registry import load_registry
    from storage.migrate import migrate
    from streams.embedded import EmbeddedPostgres
    from streams.runtime import require_urls

    only = [i.strip() for s in args.source for i in s.split(",") if i.strip()]
    try:
        at = datetime.fromisoformat(args.at) if args.at else None
    except ValueError:
        print(f"quantrac scheduler: --at {args.at!r}: an ISO date-time", file=sys.stderr)
        return 2
    if at is not None and at.tzinfo is None:
        print(
            "quantrac scheduler: --at needs an offset, e.g. 2026-11-01T06:00+07:00", file=sys.stderr
        )
        return 2
    configured = _settings()
    if not args.once and not args.list and configured.schedule_port is not None:
        from streams.ports import check_free

        check_free(configured.schedule_host, configured.schedule_port, "QUANTRAC_SCHEDULE_PORT")
    known = {s.id for s in load_registry(configured.registry_path).sources}
    unknown = [s for s in only if s not in known]
    if unknown:
        print(f"quantrac scheduler: unknown source id {unknown[0]!r}", file=sys.stderr)
        return 2
    with ExitStack() as stack:  # the database only: the scheduler needs no broker
        url = configured.database_url
        if not url:
            require_urls(configured, ("database_url",))  # embedded only where allowed
            url = stack.enter_context(EmbeddedPostgres(configured.data_dir / "pg")).uri
        settings = configured.model_copy(update={"database_url": url})
        migrate(url)
        if args.list:
            print(list_stored(url, as_json=args.json))
            return 0
        if not args.once:
            run_forever(settings, only)
            return 0
        progress = Progress("scheduled reports")
        summary = run_once(settings, at, only, lambda i, n, run: progress.update(i, n))
        progress.finish(summary.line())
        for error in summary.errors:
            print(f"  {error}", file=sys.stderr)
    return 1 if summary.failed or summary.mail_failed else 0


def cmd_notify(args: argparse.Namespace) -> int:
    from notify.rules import RulesError, load_rules

    if args.check:
        try:
            rules = load_rules(Path(args.check))
        except RulesError as exc:
            print(f"quantrac notify: {exc}", file=sys.stderr)
            return 2
        print(f"{args.check}: OK, {len(rules.routes)} route(s), {len(rules.channels)} channel(s)")
        return 0
    from notify.service import check_ready, run_notify
    from streams.ports import check_free
    from streams.runtime import services

    configured = _settings()
    try:
        check_ready(load_rules(configured.notify_rules), configured)
    except RulesError as exc:
        print(f"quantrac notify: {exc}", file=sys.stderr)
        return 2
    check_free(configured.notify_host, configured.notify_port, "QUANTRAC_NOTIFY_PORT")
    with services(configured) as settings:
        run_notify(settings)
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    from core.topics import ensure_topics
    from stations.gateway import run_gateway
    from storage.api_tokens import CachedTokens
    from streams.ports import check_free
    from streams.runtime import services

    configured = _settings()
    for port, setting in (
        (configured.gateway_http_port, "QUANTRAC_GATEWAY_HTTP_PORT"),
        (configured.gateway_ftp_port, "QUANTRAC_GATEWAY_FTP_PORT"),
    ):
        check_free(configured.gateway_host, port, setting)
    with services(configured) as settings:
        ensure_topics(settings)
        assert settings.database_url  # services() resolved it: API tokens live there
        tokens = CachedTokens(settings.database_url, settings.api_token_cache_s)
        try:
            run_gateway(settings, tokens)
        finally:
            tokens.close()
    return 0


def cmd_tokens(args: argparse.Namespace) -> int:
    from console import token_cli
    from storage.api_tokens import TokenError
    from streams.runtime import services

    if args.action in ("create", "revoke") and not args.target:
        what = "NAME --scope read|ingest" if args.action == "create" else "ID"
        return token_cli.fail(f"usage: quantrac tokens {args.action} {what}")
    if args.action != "create" and (args.scope or args.sources or args.expires is not None):
        return token_cli.fail("--scope, --sources and --expires are options of `tokens create`")
    if args.action == "create" and not args.scope:
        return token_cli.fail("tokens create needs --scope read|ingest")
    try:
        with services(_settings()) as settings:
            url = settings.database_url
            assert url
            if args.action == "create":
                out = token_cli.create(
                    url,
                    args.target,
                    args.scope,
                    days=args.expires,
                    sources=args.sources or [],
                    registry_path=settings.registry_path,
                )
            elif args.action == "list":
                out = token_cli.list_text(url, as_json=args.json)
            else:
                out = token_cli.revoke(url, args.target)
    except TokenError as exc:
        return token_cli.fail(str(exc))
    print(out)
    return 0


def cmd_forward(args: argparse.Namespace) -> int:
    """``quantrac forward [run|check|status|retry DEST]`` (streams/forwarding.py)."""
    from streams.forward_cli import forward_command

    return forward_command(args, _settings)


def cmd_mqtt_acl(args: argparse.Namespace) -> int:
    from stations.accounts import accounts_path, load_or_create
    from stations.mqtt_acl import MqttAclError, gateway_login, write_files
    from stations.registry import load_registry

    settings = _settings()
    registry = load_registry(settings.registry_path)
    out = Path(args.out) if args.out else settings.data_dir / "mosquitto"
    try:
        gateway = gateway_login(settings.mqtt_url)
        ids = [s.id for s in registry.sources]
        accounts, _ = load_or_create(accounts_path(settings.data_dir), ids)
        paths = write_files(
            out, registry, accounts, gateway, settings.mqtt_topic_root, readable=args.readable
        )
    except MqttAclError as exc:
        print(f"quantrac mqtt-acl: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from core.topics import ensure_topics
    from stations.ftp_delivery import run_simulator
    from streams.runtime import services

    with services(_settings()) as settings:
        ensure_topics(settings)
        stats = run_simulator(
            settings,
            via=args.via,
            speed=args.speed,
            backfill_hours=args.backfill_hours,
            seed=args.seed,
        )
    print(stats)
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("quantrac")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quantrac", description=__doc__)
    p.add_argument("--version", action="version", version=f"quantrac {_version()}")
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
        default=1.0,
        help="hours of past readings the dataloggers upload at start (default 1; 3 gives "
        "VN_AQI's NowCast its history at once, but takes longer to catch up)",
    )
    add("worker", cmd_worker, "run a Faust worker (QA/QC, averaging, thresholds, persistence)")
    db = add("db", cmd_db, "database: `quantrac db migrate`")
    db.add_argument("action", choices=["migrate"])
    db.add_argument(
        "--retention-days",
        type=int,
        default=None,
        help="TimescaleDB retention for readings/averages, at least 732 days; replaces the"
        " current one (default: leave it as it is; none set means keep forever)",
    )
    st = add("stations", cmd_stations, "list the registered sources, or check an edited registry")
    st.add_argument("action", nargs="?", choices=["list", "check"], default="list")
    st.add_argument("file", nargs="?", help="the registry file to check (with `check`)")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lim = add("limits", cmd_limits, "the limits a source is held to, with their legal basis")
    lim.add_argument("source", help="source id, e.g. HD-NT-01")
    lim.add_argument("--at", help="date (YYYY-MM-DD) the limits apply on; default today")
    lim.add_argument("--json", action="store_true")
    aqi = add("aqi", cmd_aqi, "VN_AQI (Decision 1459) from a CSV of hourly means")
    aqi.add_argument(
        "file",
        nargs="?",
        default="-",
        help="input CSV (default: stdin): `time` is the hour START (ISO 8601, local"
        " Asia/Ho_Chi_Minh unless it has an offset), then any of SO2, NO2, CO, O3, PM10, PM2.5"
        " hourly means in µg/m³",
    )
    aqi.add_argument(
        "--daily",
        action="store_true",
        help="one row per local calendar day with data (hours starting 00:00-23:00 local; the"
        " decision's 1:00 ... 0:00 are hour ends); the day definition and the completeness rule"
        " (quantrac's, the decision states none) are written to stderr as '# ' lines, stdout"
        " stays plain CSV; a day below the rule has empty statistics and AQI",
    )
    con = add("console", cmd_console, "the department's alert console and HTTP API")
    con.add_argument("--host", help="bind address (default: QUANTRAC_CONSOLE_HOST, 127.0.0.1)")
    us = add(
        "users",
        cmd_users,
        "console users: add NAME ROLE | list [--json] | disable NAME | passwd NAME",
    )
    us.add_argument("action", choices=["add", "list", "disable", "passwd"])
    us.add_argument("username", nargs="?")
    us.add_argument("rest", nargs="*", metavar="ROLE", help="add: operator, regulator or admin")
    us.add_argument(
        "--password-stdin",
        action="store_true",
        help="add/passwd: read the password as one line of stdin (implied when stdin is no "
        "terminal; else a prompt asks twice)",
    )
    us.add_argument("--json", action="store_true", help="list: JSON instead of a table")
    tok = add(
        "tokens",
        cmd_tokens,
        "API tokens for machines: create NAME --scope read|ingest | list [--json] | revoke ID",
    )
    tok.add_argument("action", choices=["create", "list", "revoke"])
    tok.add_argument("target", nargs="?", metavar="NAME|ID", help="create: a name; revoke: id")
    tok.add_argument("--scope", choices=["read", "ingest"], help="create: what the token may do")
    tok.add_argument("--expires", type=float, metavar="DAYS", help="create: expire after DAYS")
    tok.add_argument(
        "--sources",
        nargs="+",
        metavar="ID",
        help="create, ingest: the sources the token may post for (space or comma separated)",
    )
    tok.add_argument("--json", action="store_true", help="list: JSON instead of a table")
    sec = add("secrets", cmd_secrets, "replace the placeholder secrets of the deploy env files")
    sec.add_argument(
        "action",
        choices=["init", "check"],
        help="init: random values for every empty or placeholder secret (in place, values never "
        "printed; the database password is kept equal everywhere); check: list them, exit 1",
    )
    sec.add_argument("--env-dir", default="deploy/env", help="default: deploy/env")
    sec.add_argument("--json", action="store_true", help="check: JSON list instead of lines")
    add("gateway", cmd_gateway, "receive station data: FTP (Circular 10 files), HTTP, MQTT")
    ntf = add("notify", cmd_notify, "send violation notifications (e-mail, signed webhooks)")
    ntf.add_argument(
        "--check", metavar="FILE", help="validate a routing rules file and exit (2 if invalid)"
    )
    acl = add(
        "mqtt-acl",
        cmd_mqtt_acl,
        "Mosquitto password and ACL files: each station writes only under its own topic",
    )
    acl.add_argument("--out", help="directory for `passwd` and `acl` (default DATA_DIR/mosquitto)")
    acl.add_argument(
        "--readable",
        action="store_true",
        help="mode 0644 instead of 0600 for the password file, for a broker running as another "
        "user (the hashes are salted PBKDF2-SHA512 of random account passwords)",
    )
    fwd = add("forward", cmd_forward, "forward archived originals to downstream receivers")
    fwd.add_argument(
        "action", nargs="?", choices=["run", "check", "status", "retry"], default="run"
    )
    fwd.add_argument("destination", nargs="?", help="the destination to retry (with `retry`)")
    fwd.add_argument(
        "--file", help="destinations file (default QUANTRAC_FORWARD_DESTINATIONS_FILE)"
    )
    sim = add("simulate", cmd_simulate, "simulated dataloggers for every registered source")
    sim.add_argument(
        "--via",
        choices=["ftp", "kafka"],
        default="ftp",
        help="upload to the gateway over FTP (default) or send straight to Kafka",
    )
    sim.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="simulated seconds per real second while catching up (<=0: at once)",
    )
    sim.add_argument(
        "--backfill-hours",
        type=float,
        default=3.0,
        help="start this many hours in the past (never beyond now)",
    )
    sim.add_argument("--seed", type=int, default=1)
    sch = add(
        "scheduler",
        cmd_scheduler,
        "monthly compliance and quality reports on schedule: stored, e-mailed, audited",
    )
    sch.add_argument(
        "--once",
        action="store_true",
        help="one run (what is due now, missed months included), then exit; default: every "
        "QUANTRAC_SCHEDULE_POLL_S until SIGTERM",
    )
    sch.add_argument(
        "--source",
        action="append",
        default=[],
        help="only these source ids (repeat, or comma-separated)",
    )
    sch.add_argument("--list", action="store_true", help="list the stored reports, then exit")
    sch.add_argument("--json", action="store_true", help="with --list: JSON instead of a table")
    sch.add_argument(
        "--at",
        help="with --once: run as if it were this time (ISO with offset), e.g. to make a "
        "month again after deleting its row",
    )
    rep = add("report", cmd_report, "regulator reports: `quantrac report KIND --help`")
    add_report_kinds(rep)  # one sub-command per kind, each with its own --help
    return p


def main(argv: list[str] | None = None) -> int:
    from streams.embedded import EmbeddedServiceError
    from streams.ports import PortInUse
    from streams.runtime import MissingServiceError

    args = build_parser().parse_args(argv)
    try:
        code = int(args.fn(args))
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return code
    except (
        MissingServiceError,
        EmbeddedServiceError,
        PortInUse,
    ) as exc:  # start-up: name what is missing
        print(f"quantrac {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `quantrac stations | head -1`: the reader has gone, which is not an error; stdout
        # goes to devnull so the interpreter's final flush does not complain either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

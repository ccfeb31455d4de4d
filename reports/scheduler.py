"""``quantrac scheduler``: the monthly reports, made on schedule, stored once, e-mailed, audited.

Each run (every ``schedule_poll_s``, or once with ``--once``) asks reports/schedule.py what is due
(previous month from the 1st at ``schedule_hour`` local, plus missed months), builds each report
with the same code as ``quantrac report`` (reports/service.py) and stores the file in
``scheduled_reports`` (migration 0013), keyed by (kind, subject, period): a run, a restart or a
second scheduler never makes one twice. Then every stored report not yet mailed goes out, one
message per facility (compliance: all its sources' reports) or per station (quality), to the
kind's recipients. A run holds a PostgreSQL advisory lock so two schedulers never overlap.

Its own process rather than a task in the console: the console may run as several replicas,
building a month's PDFs is seconds of CPU a request worker should not spend, and SMTP waits
belong nowhere near a web server's event loop.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import signal
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from core.parameters import SourceKind
from core.settings import Settings
from reports.common import ReportContext
from reports.i18n import Lang
from reports.mail import Attachment, MailError, SmtpConfig, build_message, recipients, send
from reports.model import ReportKind
from reports.schedule import Run, Schedule, Subject, due_runs, next_run
from reports.service import MEDIA_TYPES, Format, ReportRequest, connect, write_report

log = logging.getLogger(__name__)

ACTOR = "scheduler"  # audit_log.actor of what the scheduler does
LOCK_KEY = 0x71_75_61_6E_74_72  # pg_advisory_lock key of a run ("quantr")
TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # the department's clock (thresholds/averaging.py LOCAL_TZ)


@dataclass
class RunSummary:
    due: int = 0
    done: int = 0
    failed: int = 0
    refused: int = 0
    mailed: int = 0
    mail_failed: int = 0
    busy: bool = False  # another scheduler held the lock: nothing done
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.busy:
            return "another scheduler is running: nothing done"
        return (
            f"{self.due} due: {self.done} stored, {self.failed} failed, {self.refused} refused;"
            f" {self.mailed} e-mail(s) sent, {self.mail_failed} failed"
        )


def schedule_of(settings: Settings) -> Schedule:
    return Schedule(settings.schedule_hour, TZ, settings.schedule_catch_up_months)


def subjects_of(registry: Any, only: Sequence[str] = ()) -> list[Subject]:
    """Compliance for every emission source (grouped by facility when mailed), quality for
    every ambient air and surface water station; ``only`` restricts to those source ids."""
    wanted = set(only)
    out = []
    for s in registry.sources:
        if wanted and s.id not in wanted:
            continue
        if s.kind.is_emission:
            out.append(Subject(ReportKind.COMPLIANCE, s.id, s.installed, s.facility))
        elif s.kind in (SourceKind.AMBIENT_AIR, SourceKind.SURFACE_WATER):
            out.append(Subject(ReportKind.AIR_QUALITY, s.id, s.installed))
    return out


def settled_keys(conn: psycopg.Connection[Any], max_attempts: int) -> set[tuple[str, str, str]]:
    """Keys not to build again: done, refused, or failed ``max_attempts`` times."""
    rows = conn.execute(
        "SELECT kind, subject, period FROM scheduled_reports"
        " WHERE status <> 'failed' OR attempts >= %s",
        (max_attempts,),
    ).fetchall()
    return {(k, s, p) for k, s, p in rows}


def audit(conn: psycopg.Connection[Any], action: str, target: str, detail: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO audit_log (actor, action, target, detail) VALUES (%s, %s, %s, %s)",
        (ACTOR, action, target, Jsonb(detail)),
    )


@dataclass(frozen=True)
class Outcome:
    status: str  # done | failed (retried) | refused (the request cannot be served)
    content: bytes | None
    text: str  # the filename when done, else the error


def build(conninfo: str, ctx: ReportContext, run: Run, fmt: Format) -> Outcome:
    """Render one report."""
    req = ReportRequest(run.kind, fmt, ctx.lang, run.period, (run.subject,))
    out = io.BytesIO()
    try:
        with connect(conninfo) as conn:
            write_report(conn, ctx, req, out)
    except (ValueError, KeyError) as exc:  # the request itself: period, source, regulation
        return Outcome("refused", None, str(exc).strip("'\""))
    except Exception as exc:  # anything else is retried on the next run
        log.exception("scheduled %s %s %s failed", run.kind, run.subject, run.period)
        return Outcome("failed", None, f"{exc.__class__.__name__}: {exc}")
    return Outcome("done", out.getvalue(), req.filename())


def store(
    conn: psycopg.Connection[Any], run: Run, fmt: Format, lang: Lang, outcome: Outcome
) -> int | None:
    """Insert the outcome, or update a failed row (a retry); return the row id (None if the
    key was settled meanwhile by another process)."""
    status, content, text = outcome.status, outcome.content, outcome.text
    ok = status == "done"
    row = conn.execute(
        "INSERT INTO scheduled_reports (kind, subject, facility, period, status, format, lang,"
        " filename, media_type, content, size_bytes, sha256, error) VALUES"
        " (%(kind)s, %(subject)s, %(facility)s, %(period)s, %(status)s, %(format)s, %(lang)s,"
        " %(filename)s, %(media)s, %(content)s, %(size)s, %(sha)s, %(error)s)"
        " ON CONFLICT (kind, subject, period) DO UPDATE SET status = EXCLUDED.status,"
        " filename = EXCLUDED.filename, media_type = EXCLUDED.media_type,"
        " content = EXCLUDED.content, size_bytes = EXCLUDED.size_bytes,"
        " sha256 = EXCLUDED.sha256, error = EXCLUDED.error,"
        " attempts = scheduled_reports.attempts + 1, updated_at = now()"
        " WHERE scheduled_reports.status = 'failed' RETURNING id",
        {
            "kind": run.kind.value,
            "subject": run.subject,
            "facility": run.facility,
            "period": run.period,
            "status": status,
            "format": fmt.value,
            "lang": lang.value,
            "filename": text if ok else None,
            "media": MEDIA_TYPES[fmt] if ok else None,
            "content": content if ok else None,
            "size": len(content) if ok and content else None,
            "sha": hashlib.sha256(content).hexdigest() if ok and content else None,
            "error": None if ok else text,
        },
    ).fetchone()
    if row is None:
        return None
    detail = {"kind": run.kind.value, "subject": run.subject, "period": run.period}
    audit(conn, f"scheduled_report_{status}", f"scheduled_report:{row[0]}", detail)
    return int(row[0])


# --- e-mail ---------------------------------------------------------------------------------

SUBJECT_LINE = {
    (ReportKind.COMPLIANCE, Lang.VI): "Báo cáo tuân thủ quan trắc tự động tháng {month} — {who}",
    (ReportKind.COMPLIANCE, Lang.EN): "Monitoring compliance report, {month} — {who}",
    (ReportKind.AIR_QUALITY, Lang.VI): "Báo cáo chất lượng môi trường tháng {month} — {who}",
    (ReportKind.AIR_QUALITY, Lang.EN): "Environmental quality report, {month} — {who}",
}
BODY = {
    Lang.VI: "Báo cáo định kỳ tháng {month} do hệ thống quan trắc tự động lập lúc {at} (giờ"
    " Việt Nam), đính kèm:\n{files}\n\nCác báo cáo này cũng có trong bảng điều khiển, mục"
    " Báo cáo định kỳ (/scheduled-reports).\n",
    Lang.EN: "Scheduled report(s) for {month}, made by the automatic monitoring system at {at}"
    " (Vietnam time), attached:\n{files}\n\nThey are also in the console under Scheduled"
    " reports (/scheduled-reports).\n",
}


@dataclass(frozen=True)
class Pending:
    id: int
    kind: ReportKind
    subject: str
    facility: str | None
    period: str
    filename: str
    media_type: str
    content: bytes
    sha256: str
    created_at: datetime


def pending_mail(conn: psycopg.Connection[Any], max_attempts: int) -> list[Pending]:
    rows = conn.execute(
        "SELECT id, kind, subject, facility, period, filename, media_type, content, sha256,"
        " created_at FROM scheduled_reports WHERE status = 'done' AND mailed_at IS NULL"
        " AND mail_attempts < %s ORDER BY period, kind, facility, subject",
        (max_attempts,),
    ).fetchall()
    return [
        Pending(r[0], ReportKind(r[1]), r[2], r[3], r[4], r[5], r[6], bytes(r[7]), r[8], r[9])
        for r in rows
    ]


def mail_groups(pending: Sequence[Pending]) -> dict[tuple[str, ReportKind, str], list[Pending]]:
    """One message per facility (compliance) or per station (quality) and month."""
    groups: dict[tuple[str, ReportKind, str], list[Pending]] = defaultdict(list)
    for p in pending:
        who = p.facility if p.kind is ReportKind.COMPLIANCE and p.facility else p.subject
        groups[(p.period, p.kind, who)].append(p)
    return groups


def message_for(
    sender: str, to: Sequence[str], group: Sequence[Pending], who: str, lang: Lang, name: str
) -> Any:
    first = group[0]
    year, month = first.period.split("-")
    when = f"{month}/{year}"
    label = f"{who} ({name})" if name and name != who else who
    made = max(p.created_at for p in group).astimezone(TZ).strftime("%d/%m/%Y %H:%M")
    files = "\n".join(f"- {p.filename} (SHA-256 {p.sha256})" for p in group)
    return build_message(
        sender,
        to,
        SUBJECT_LINE[(first.kind, lang)].format(month=when, who=label),
        BODY[lang].format(month=when, at=made, files=files),
        [Attachment(p.filename, p.media_type, p.content) for p in group],
    )


def mail_pending(
    conn: psycopg.Connection[Any], settings: Settings, registry: Any, summary: RunSummary
) -> None:
    smtp = SmtpConfig.from_settings(settings)
    pending = pending_mail(conn, settings.schedule_max_attempts)
    if smtp is None:
        if pending:
            log.warning(
                "%d report(s) stored but not mailed: no QUANTRAC_SCHEDULE_SMTP_HOST", len(pending)
            )
        return
    lang = Lang(settings.schedule_lang)
    to_by_kind = {
        ReportKind.COMPLIANCE: recipients(settings.schedule_recipients_compliance),
        ReportKind.AIR_QUALITY: recipients(settings.schedule_recipients_quality),
    }
    for (_period, kind, who), group in mail_groups(pending).items():
        to = to_by_kind.get(kind, [])
        if not to:
            continue  # nobody configured for this kind: stored only
        if kind is ReportKind.COMPLIANCE and group[0].facility:
            name = registry.facility(group[0].facility).name
        else:
            source = registry.find(who)
            name = source.name if source is not None else ""
        ids = [p.id for p in group]
        try:
            send(smtp, message_for(smtp.sender, to, group, who, lang, name))
        except MailError as exc:
            summary.mail_failed += 1
            summary.errors.append(str(exc))
            log.warning("e-mail of %s %s %s failed: %s", kind, who, _period, exc)
            conn.execute(
                "UPDATE scheduled_reports SET mail_attempts = mail_attempts + 1, mail_error = %s,"
                " updated_at = now() WHERE id = ANY(%s)",
                (str(exc), ids),
            )
            for i in ids:
                audit(
                    conn,
                    "scheduled_report_mail_failed",
                    f"scheduled_report:{i}",
                    {"to": to, "error": str(exc)},
                )
            continue
        summary.mailed += 1
        conn.execute(
            "UPDATE scheduled_reports SET mailed_at = now(), mailed_to = %s, mail_error = NULL,"
            " mail_attempts = mail_attempts + 1, updated_at = now() WHERE id = ANY(%s)",
            (to, ids),
        )
        for i in ids:
            audit(conn, "scheduled_report_mailed", f"scheduled_report:{i}", {"to": to})


# --- a run ----------------------------------------------------------------------------------

Progress = Callable[[int, int, Run], None]


def run_once(
    settings: Settings,
    now: datetime | None = None,
    only: Sequence[str] = (),
    progress: Progress | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> RunSummary:
    """Build and store what is due at ``now``, then mail what is stored and not yet mailed."""
    assert settings.database_url, "resolve the database first (streams.runtime.services)"
    now = now or datetime.now(UTC)
    schedule = schedule_of(settings)
    lang, fmt = Lang(settings.schedule_lang), Format(settings.schedule_format)
    ctx = ReportContext.from_settings(settings, lang, now)
    summary = RunSummary()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:  # type: ignore[index]
            summary.busy = True
            return summary
        try:
            settled = settled_keys(conn, settings.schedule_max_attempts)
            runs = due_runs(now, schedule, subjects_of(ctx.registry, only), settled)
            summary.due = len(runs)
            for i, run in enumerate(runs):
                if stopping():  # SIGTERM mid-run: the rest is still due at the next start
                    break
                outcome = build(settings.database_url, ctx, run, fmt)
                if store(conn, run, fmt, lang, outcome) is not None:
                    setattr(summary, outcome.status, getattr(summary, outcome.status) + 1)
                    if outcome.status != "done":
                        summary.errors.append(
                            f"{run.kind} {run.subject} {run.period}: {outcome.text}"
                        )
                if progress:
                    progress(i + 1, len(runs), run)
            if not stopping():
                mail_pending(conn, settings, ctx.registry, summary)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return summary


class Health:
    """What /healthz answers: the last run's end and outcome (a run that could not reach the
    database is unhealthy until one succeeds)."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.last_ok: datetime | None = None
        self.last_error: str | None = None

    def body(self) -> tuple[int, bytes]:
        now = datetime.now(UTC)
        doc = {
            "status": "degraded" if self.last_error else "ok",
            "last_run": self.last_ok.isoformat() if self.last_ok else None,
            "error": self.last_error,
            "next_due": next_run(now, self.schedule).isoformat(),
        }
        return (503 if self.last_error else 200), json.dumps(doc).encode()


def serve_health(health: Health, host: str, port: int) -> ThreadingHTTPServer:
    """``GET /healthz`` on ``host:port`` in a daemon thread (compose's healthcheck)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = health.body() if self.path == "/healthz" else (404, b"{}")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # no access log lines
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="healthz", daemon=True).start()
    return server


def run_forever(settings: Settings, only: Sequence[str] = ()) -> None:
    """Run every ``schedule_poll_s`` until SIGTERM/SIGINT (each run is idempotent)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    schedule = schedule_of(settings)
    health = Health(schedule)
    server = None
    if settings.schedule_port is not None:
        server = serve_health(health, settings.schedule_host, settings.schedule_port)
    try:
        while not stop.is_set():
            try:
                summary = run_once(settings, only=only, stopping=stop.is_set)
                health.last_ok, health.last_error = datetime.now(UTC), None
                log.info("scheduled reports: %s", summary.line())
            except psycopg.Error as exc:  # the database is away: try again at the next poll
                health.last_error = f"database: {exc.__class__.__name__}"
                log.warning("scheduled reports: database error, retrying: %s", exc)
            log.info("next reports due at %s", next_run(datetime.now(UTC), schedule).isoformat())
            stop.wait(settings.schedule_poll_s)
    finally:
        if server is not None:
            server.shutdown()


# --- listing (quantrac scheduler --list) ----------------------------------------------------

LIST_COLUMNS = (
    "id",
    "period",
    "kind",
    "subject",
    "facility",
    "status",
    "filename",
    "size_bytes",
    "mailed_at",
    "error",
)


def stored_reports(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The stored scheduled reports, newest month first (no file contents)."""
    cur = conn.execute(
        f"SELECT {', '.join(LIST_COLUMNS)} FROM scheduled_reports"
        " ORDER BY period DESC, kind, facility NULLS LAST, subject"
    )
    return [dict(zip(LIST_COLUMNS, row, strict=True)) for row in cur.fetchall()]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    header = ("id", "period", "kind", "subject", "status", "size", "mailed")
    lines = [header]
    for r in rows:
        mailed = r["mailed_at"].astimezone(TZ).strftime("%Y-%m-%d %H:%M") if r["mailed_at"] else "-"
        size = f"{r['size_bytes'] / 1024:.0f} kB" if r["size_bytes"] else (r["error"] or "-")
        lines.append(
            (str(r["id"]), r["period"], r["kind"], r["subject"], r["status"], size, mailed)
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    )


def list_stored(conninfo: str, as_json: bool = False) -> str:
    with psycopg.connect(conninfo) as conn:
        rows = stored_reports(conn)
    if as_json:
        return json.dumps(rows, default=str, ensure_ascii=False, indent=1)
    return format_table(rows)

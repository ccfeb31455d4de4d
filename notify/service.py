"""``quantrac notify``: plan, escalate and send notifications in a loop (notify/store.py).

Each round: queue deliveries for new violation events (rules.decide), queue escalations that
are due, then send every due delivery, one locked row at a time, and record the outcome (sent,
or the error and the next attempt with exponential backoff). While the database is down the
round is retried after the poll interval; nothing is lost, since the events and the outbox are
both in the database. Several notifiers may run: planning takes an advisory lock, sending skips
rows another notifier holds.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import FrameType

import psycopg
from prometheus_client import CollectorRegistry, start_http_server

from core.metrics import Metrics
from core.settings import Settings
from notify import channels, messages, store
from notify.rules import EmailChannel, FileChannel, Rules, RulesError, WebhookChannel, load_rules

log = logging.getLogger(__name__)


def check_ready(rules: Rules, settings: Settings) -> None:
    """Refuse to start when a channel in use lacks what it needs to send (named, exit 2)."""
    types = rules.channel_types()
    if "email" in types and not settings.notify_smtp_host:
        raise RulesError("e-mail channels are configured but QUANTRAC_NOTIFY_SMTP_HOST is unset")
    if "webhook" in types and not settings.notify_webhook_secret:
        raise RulesError(
            "webhook channels are configured but QUANTRAC_NOTIFY_WEBHOOK_SECRET is unset "
            "(every webhook is signed)"
        )


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """Delay before attempt ``attempts + 1`` after ``attempts`` failures (1, 2, 4 … × base)."""
    return float(min(max_s, base_s * 2 ** max(0, attempts - 1)))


@dataclass
class Round:
    """What one round did (for logs and tests)."""

    planned: Counter[str] = field(default_factory=Counter)
    escalations: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


class Notifier:
    def __init__(self, settings: Settings, rules: Rules, metrics: Metrics | None = None) -> None:
        if not settings.database_url:
            raise ValueError("the notifier needs settings.database_url")
        check_ready(rules, settings)
        self.settings = settings
        self.rules = rules
        self.metrics = metrics or Metrics(CollectorRegistry())
        self.smtp = (
            channels.SmtpConfig(
                host=settings.notify_smtp_host,
                port=settings.notify_smtp_port,
                sender=settings.notify_smtp_from,
                security=settings.notify_smtp_security,
                username=settings.notify_smtp_user,
                password=settings.notify_smtp_password,
                timeout_s=settings.notify_timeout_s,
            )
            if settings.notify_smtp_host
            else None
        )
        self._conn: psycopg.Connection | None = None
        for action in ("send", "group", "fold", "close", "skip", "escalation"):
            self.metrics.notifications_planned.labels(action)
        for ctype in ("email", "webhook", "file"):
            for outcome in ("sent", "retry", "failed", "cancelled"):
                self.metrics.notifications.labels(ctype, outcome)

    def open(self) -> psycopg.Connection:
        """Connect (again); the first connection ever also fixes where the news starts."""
        if self._conn is None or self._conn.closed:
            assert self.settings.database_url
            self._conn = psycopg.connect(self.settings.database_url, autocommit=True)
            store.ensure_since(self._conn)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run_once(self) -> Round:
        """One round: plan, escalate, send what is due."""
        result = Round()
        conn = self.open()
        url = self.settings.notify_console_url
        result.planned = store.plan(conn, self.rules, url)
        result.escalations = store.escalate(conn, self.rules, url)
        for action, n in result.planned.items():
            self.metrics.notifications_planned.labels(action).inc(n)
        self.metrics.notifications_planned.labels("escalation").inc(result.escalations)
        while True:
            with conn.transaction():
                d = store.next_due(conn)
                if d is None:
                    break
                outcome = self._deliver(conn, d)
            result.outcomes[outcome] += 1
            self.metrics.notifications.labels(d.channel_type, outcome).inc()
        self.metrics.notifications_pending.set(store.pending_count(conn))
        return result

    def _deliver(self, conn: psycopg.Connection, d: store.Delivery) -> str:
        if d.kind == "escalation" and store.acknowledged(conn, d.violation_id):
            store.mark_cancelled(conn, d, "acknowledged before the escalation went out")
            return "cancelled"
        try:
            try:
                self._send(d)
            except channels.SendError:
                raise
            except Exception as exc:  # an unforeseen failure of one channel stops no other
                log.exception("notification %s via %s: unexpected error", d.dedupe_key, d.channel)
                raise channels.SendError(f"unexpected {type(exc).__name__}") from None
        except channels.SendError as exc:
            attempts = d.attempts + 1
            give_up = attempts >= self.settings.notify_max_attempts
            delay = None if give_up else self._delay(attempts)
            store.mark_failed(conn, d, str(exc), delay)
            log.warning(
                "notification %s via %s failed (attempt %d%s): %s",
                d.dedupe_key,
                d.channel,
                attempts,
                ", giving up" if give_up else f", again in {delay:.0f} s",
                exc,
            )
            return "failed" if give_up else "retry"
        store.mark_sent(conn, d)
        log.info("notification %s sent via %s", d.dedupe_key, d.channel)
        return "sent"

    def _delay(self, attempts: int) -> float:
        s = self.settings
        return backoff_s(attempts, s.notify_retry_base_s, s.notify_retry_max_s)

    def _send(self, d: store.Delivery) -> None:
        channel = self.rules.channels.get(d.channel)
        if channel is None:
            raise channels.SendError(f"channel '{d.channel}' is no longer in the rules file")
        if isinstance(channel, WebhookChannel):
            assert self.settings.notify_webhook_secret  # check_ready
            channels.post_webhook(
                channel.url,
                channel.recipient(),
                d.payload,
                secret=self.settings.notify_webhook_secret,
                timeout_s=self.settings.notify_timeout_s,
            )
        elif isinstance(channel, EmailChannel):
            assert self.smtp is not None  # check_ready
            text = messages.email_text(d.subject, d.payload)
            channels.send_email(self.smtp, channel.to, d.subject, text, d.dedupe_key)
        elif isinstance(channel, FileChannel):
            channels.append_line(channel.path, d.payload)

    def run(self, stop: threading.Event) -> None:
        """Rounds every ``notify_poll_s`` until ``stop`` is set; a database outage waits."""
        while not stop.is_set():
            try:
                r = self.run_once()
                if r.outcomes or r.escalations:
                    log.info(
                        "round: planned %s, escalations %d, deliveries %s",
                        dict(r.planned),
                        r.escalations,
                        dict(r.outcomes),
                    )
            except psycopg.OperationalError as exc:
                log.warning("database unavailable (%s); retrying", type(exc).__name__)
                self.close()
            except psycopg.Error:  # e.g. the schema not migrated yet: logged, tried again
                log.exception("notifier round failed; retrying")
                self.close()
            stop.wait(self.settings.notify_poll_s)
        self.close()


def run_notify(settings: Settings) -> None:
    """Migrate, load the rules (a bad file: RulesError), serve /metrics, loop until SIGTERM."""
    from storage.migrate import migrate

    rules = load_rules(settings.notify_rules)
    if not settings.database_url:
        raise ValueError("notify needs settings.database_url (wrap in streams.runtime.services)")
    migrate(settings.database_url)
    notifier = Notifier(settings, rules, Metrics())
    if not rules.routes:
        log.warning("no routing rules (QUANTRAC_NOTIFY_RULES unset or empty): nothing is sent")
    start_http_server(settings.notify_port, addr=settings.notify_host)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info(
        "notifier: %d route(s), %d channel(s), metrics at http://%s:%d/metrics",
        len(rules.routes),
        len(rules.channels),
        settings.notify_host,
        settings.notify_port,
    )
    notifier.run(stop)

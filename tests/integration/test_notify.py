"""Notifications end to end on a real PostgreSQL (tests/conftest.py), a real SMTP server
(aiosmtpd) and a real HTTP webhook receiver, both on 127.0.0.1.

Most tests store violation events the way the worker's persist agent stores them
(storage/rows.py through storage/writer.py's BatchWriter); the last one sends readings through
the real broker and a real worker process. The notifier (notify/service.py) runs its rounds in
the test's thread, so each assertion follows a completed round; one test runs the real
`quantrac notify` process.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from aiosmtpd.controller import Controller
from psycopg_pool import AsyncConnectionPool

from core.records import ViolationEvent
from core.settings import Settings
from notify import channels
from notify.rules import load_rules
from notify.service import Notifier
from storage import rows
from storage.migrate import migrate
from storage.writer import VIOLATION_EVENTS, VIOLATIONS, BatchWriter
from streams.embedded import free_port
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

SECRET = "webhook-test-secret-0123456789"
T0 = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


# --- the local servers -------------------------------------------------------------------


@dataclass
class Mailbox:
    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message_from_bytes(envelope.content, policy=policy.default),
            )
        )
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for _, rcpt, m in self.messages if address in rcpt]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


class Receiver:
    """A webhook receiver on 127.0.0.1:port; starts down until :meth:`start`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.stop()


# --- database, events, notifier ------------------------------------------------------------


@pytest.fixture
def db(database_url: str) -> str:
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sources (id, name, kind, district, facility_id, interval_s, spec)"
            " VALUES ('HD-NT-03', 'Cửa xả KCN Đại An', 'wastewater', 'TP Hải Dương', 'KCN-DA',"
            " 300, '{}'), ('HD-KK-01', 'Trạm Quảng trường', 'ambient_air', 'TP Hải Dương',"
            " NULL, 300, '{}'), ('HD-NT-04', 'Cửa xả 2 KCN Đại An', 'wastewater',"
            " 'TP Hải Dương', 'KCN-DA', 300, '{}')"
        )
    return database_url


def event(
    vid: str,
    kind: str,
    seq: int,
    *,
    source: str = "HD-NT-03",
    parameter: str = "COD",
    rule: str = "qcvn40-cod-1h",
    severity: str = "1.5-2",
    value: float = 110.0,
) -> ViolationEvent:
    at = T0 + timedelta(hours=seq + 1)
    return ViolationEvent(
        violation_id=vid,
        event=kind,
        seq=seq,
        source_id=source,
        parameter=parameter,
        rule_id=rule,
        period="1h",
        started_at=T0,
        at=at,
        value=value,
        limit=67.5,
        ratio=value / 67.5,
        severity=severity,
        peak_value=value,
        peak_ratio=value / 67.5,
        ended_at=at if kind == "closed" else None,
        legal_basis="QCVN 40:2025/BTNMT, Bảng 1 (illustrative test row)",
    )


def store(url: str, *events: ViolationEvent) -> None:
    """As the worker's persist_violations agent: events, then the violations' latest state."""

    async def write() -> None:
        async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
            await BatchWriter(pool, VIOLATION_EVENTS).write([rows.event_row(e) for e in events])
            await BatchWriter(pool, VIOLATIONS).write([rows.violation_row(e) for e in events])

    asyncio.run(write())


def acknowledge(url: str, vid: str) -> None:
    """As the console's acknowledgement (storage/queries.py): history row + first ack."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO acknowledgements (violation_id, username, note) VALUES (%s, 'op', 'seen')",
            (vid,),
        )
        conn.execute(
            "UPDATE violations SET acknowledged_at = now(), acknowledged_by = 'op',"
            " ack_note = 'seen' WHERE violation_id = %s AND acknowledged_at IS NULL",
            (vid,),
        )


def log_rows(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM notification_deliveries ORDER BY id").fetchall()


def write_rules(tmp_path: Path, webhook_port: int, escalate_min: float = 0.02) -> Path:
    rules = {
        "channels": {
            "duty": {"type": "email", "to": ["duty@example.vn"]},
            "chief": {"type": "email", "to": ["chief@example.vn"]},
            "ops": {"type": "webhook", "url": f"http://127.0.0.1:{webhook_port}/hook?token=t0k"},
        },
        "routes": [
            {
                "name": "emission",
                "match": {"facilities": ["KCN-DA"], "kinds": ["exceedance"]},
                "channels": ["duty", "ops"],
                "group_window_minutes": 60,
                "escalate": {"after_minutes": escalate_min, "channels": ["chief"]},
            }
        ],
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


def notifier_settings(db: str, smtp_port: int, rules: Path, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db,
        data_dir=tmp_path,
        notify_rules=rules,
        notify_smtp_host="127.0.0.1",
        notify_smtp_port=smtp_port,
        notify_smtp_security="off",
        notify_smtp_from="quantrac@so-tnmt.example.vn",
        notify_webhook_secret=SECRET,
        notify_console_url="http://console.example.vn",
        notify_retry_base_s=0.2,
        notify_retry_max_s=0.5,
        notify_timeout_s=5.0,
    )


@pytest.fixture
def setup(
    db: str, smtp: tuple[Mailbox, int], webhook: Receiver, tmp_path: Path
) -> tuple[Settings, Mailbox, Receiver]:
    rules = write_rules(tmp_path, webhook.port)
    return notifier_settings(db, smtp[1], rules, tmp_path), smtp[0], webhook


def new_notifier(settings: Settings) -> Notifier:
    """A started notifier: events stored from now on are news to it."""
    n = Notifier(settings, load_rules(settings.notify_rules))
    n.open()
    return n


def settle(n: Notifier) -> None:
    """Rounds until nothing is due now (a pending retry may stay for its backoff)."""
    for _ in range(20):
        r = n.run_once()
        if not r.outcomes and not r.escalations and not r.planned:
            return
    raise AssertionError("the notifier kept finding work")


# --- the tests -----------------------------------------------------------------------------


def test_violation_gives_one_mail_and_one_signed_webhook(setup: Any) -> None:
    settings, mailbox, webhook = setup
    webhook.start()
    n = new_notifier(settings)
    store(settings.database_url, event("V1", "opened", 0))
    settle(n)

    [(sender, rcpt, mail)] = mailbox.messages
    assert (sender, rcpt) == ("quantrac@so-tnmt.example.vn", ["duty@example.vn"])
    assert mail["Subject"] == ("[quantrac] opened: HD-NT-03 COD 110 vs limit 67.5 ×1.63 band 1.5-2")
    assert mail["X-Quantrac-Delivery"] == "episode:emission:duty:V1"
    text = mail.get_payload(decode=True).decode()
    assert "Acknowledge in the console: http://console.example.vn/violations/V1" in text
    assert "05/12/2026 08:00" in text  # started 01:00 UTC, local time

    [(headers, body)] = webhook.requests
    assert channels.verify(SECRET, headers["X-Quantrac-Signature"], body)
    assert not channels.verify("another secret", headers["X-Quantrac-Signature"], body)
    doc = json.loads(body)
    assert doc["kind"] == "episode" and doc["delivery"] == "episode:emission:ops:V1"
    assert doc["violation"]["violation_id"] == "V1" and doc["violation"]["value"] == 110.0
    assert headers["X-Quantrac-Delivery"] == doc["delivery"]

    log = log_rows(settings.database_url)
    assert {(r["channel"], r["status"], r["attempts"]) for r in log} == {
        ("duty", "sent", 1),
        ("ops", "sent", 1),
    }
    # the log shows the webhook without its query token
    assert {r["recipient"] for r in log} == {
        "duty@example.vn",
        f"http://127.0.0.1:{webhook.port}/hook",
    }

    # a restarted notifier does not send again what was confirmed
    n.close()
    settle(new_notifier(settings))
    assert len(mailbox.messages) == 1 and len(webhook.requests) == 1


def test_an_episode_is_one_message_and_a_flapping_rule_is_grouped(setup: Any) -> None:
    settings, mailbox, webhook = setup
    webhook.start()
    n = new_notifier(settings)
    url = settings.database_url
    store(url, event("V1", "opened", 0))
    settle(n)
    # the episode goes on: updates, a correction, a worse band, then it closes
    store(
        url,
        event("V1", "updated", 1, value=150.0, severity="2-3"),
        event("V1", "corrected", 2, value=140.0),
        event("V1", "updated", 3, value=200.0, severity="2-3"),
        event("V1", "closed", 4, value=60.0, severity="none"),
    )
    settle(n)
    # the same source and rule opens again inside the 60-minute window: grouped, not sent
    store(url, event("V2", "opened", 0), event("V2", "updated", 1))
    settle(n)
    # another rule of the same source is its own episode
    store(url, event("V3", "opened", 0, parameter="TSS", rule="qcvn40-tss-1h"))
    settle(n)
    # a source no route matches (ambient station, no facility)
    store(url, event("V4", "opened", 0, source="HD-KK-01", parameter="PM2.5"))
    settle(n)

    subjects = [m["Subject"] for m in mailbox.to("duty@example.vn")]
    assert len(subjects) == 2
    assert "HD-NT-03 COD" in subjects[0] and "HD-NT-03 TSS" in subjects[1]
    assert [d["violation"]["violation_id"] for d in webhook.documents()] == ["V1", "V3"]

    log = log_rows(url)
    grouped = [r for r in log if r["status"] == "grouped"]
    assert {(r["violation_id"], r["channel"]) for r in grouped} == {("V2", "duty"), ("V2", "ops")}
    first = {r["channel"]: r["id"] for r in log if r["violation_id"] == "V1"}
    assert {r["channel"]: r["grouped_into"] for r in grouped} == first
    assert not [r for r in log if r["violation_id"] == "V4"]
    with psycopg.connect(url) as conn:  # every event was looked at
        seen = conn.execute("SELECT count(*) FROM notification_seen").fetchone()
    assert seen == (9,)


def test_a_source_upset_in_one_round_is_one_message(setup: Any) -> None:
    """Several parameters of one source opening together: one message listing them all."""
    settings, mailbox, webhook = setup
    webhook.start()
    n = new_notifier(settings)
    url = settings.database_url
    store(
        url,
        event("V1", "opened", 0),
        event("V3", "opened", 0, parameter="TSS", rule="qcvn40-tss-1h"),
        event("V7", "opened", 0, parameter="NH4", rule="qcvn40-nh4-1h"),
        event("V8", "opened", 0, source="HD-NT-04", parameter="COD"),
    )
    settle(n)
    subjects = sorted(m["Subject"] for m in mailbox.to("duty@example.vn"))
    assert len(subjects) == 2, subjects
    assert subjects[0].startswith("[quantrac] opened: HD-NT-03 COD")
    assert subjects[0].endswith("(+2 more: TSS, NH4)")
    assert subjects[1].startswith("[quantrac] opened: HD-NT-04 COD") and "more" not in subjects[1]
    text = next(m for m in mailbox.messages if "HD-NT-03" in m[2]["Subject"])[2].get_content()
    assert "- TSS (qcvn40-tss-1h): 110 / 67.5" in text and "id V7" in text
    [lead] = [d for d in webhook.documents() if d["violation"]["source_id"] == "HD-NT-03"]
    assert [a["violation_id"] for a in lead["also"]] == ["V3", "V7"]
    log = log_rows(url)
    lead_ids = {r["channel"]: r["id"] for r in log if r["violation_id"] == "V1"}
    grouped = {
        (r["violation_id"], r["channel"]): r["grouped_into"]
        for r in log
        if r["status"] == "grouped"
    }
    assert grouped == {(v, c): lead_ids[c] for v in ("V3", "V7") for c in ("duty", "ops")}
    # later events of the batched episodes are folded too
    store(url, event("V3", "updated", 1, parameter="TSS", rule="qcvn40-tss-1h"))
    settle(n)
    assert len(mailbox.messages) == 2 and len(webhook.requests) == 2


def test_unacknowledged_violation_escalates_once_acknowledged_does_not(setup: Any) -> None:
    settings, mailbox, webhook = setup
    webhook.start()
    n = new_notifier(settings)
    url = settings.database_url
    store(url, event("V1", "opened", 0))
    settle(n)
    store(url, event("V5", "opened", 0, source="HD-NT-04", parameter="NH4", rule="nh4-1h"))
    settle(n)
    store(url, event("V6", "opened", 0))  # V1's rule again: grouped, rides on V1's escalation
    settle(n)
    assert len(mailbox.to("duty@example.vn")) == 2 and not mailbox.to("chief@example.vn")
    acknowledge(url, "V5")

    def escalated() -> bool:
        n.run_once()
        return bool(mailbox.to("chief@example.vn"))

    wait_until(escalated, 30, 0.2, lambda: str(log_rows(url)))
    settle(n)  # V5's delay has passed too: it stays acknowledged, nothing for it
    [mail] = mailbox.to("chief@example.vn")
    assert mail["Subject"].startswith("[quantrac] ESCALATION, unacknowledged: HD-NT-03 COD")
    assert "Not acknowledged for" in mail.get_payload(decode=True).decode()
    escalations = [r for r in log_rows(url) if r["kind"] == "escalation"]
    assert [(r["violation_id"], r["status"]) for r in escalations] == [("V1", "sent")]
    # more rounds and a new event on the same violation: still one escalation
    store(url, event("V1", "updated", 1, value=130.0))
    settle(n)
    assert len(mailbox.to("chief@example.vn")) == 1


def test_receiver_down_then_up_delivers_once(setup: Any) -> None:
    settings, mailbox, webhook = setup  # the receiver is not started: connection refused
    n = new_notifier(settings)
    url = settings.database_url
    store(url, event("V1", "opened", 0))
    first = n.run_once()
    assert first.outcomes == {"sent": 1, "retry": 1}  # the mail went, the webhook did not
    [hook] = [r for r in log_rows(url) if r["channel"] == "ops"]
    assert hook["status"] == "pending" and hook["attempts"] == 1
    assert "ConnectError" in hook["last_error"] and "t0k" not in hook["last_error"]

    webhook.start()
    wait_until(lambda: bool(n.run_once().outcomes.get("sent")), 30, 0.2)
    settle(n)
    assert len(webhook.requests) == 1 and len(mailbox.messages) == 1
    [hook] = [r for r in log_rows(url) if r["channel"] == "ops"]
    assert hook["status"] == "sent" and hook["attempts"] >= 2
    assert channels.verify(
        SECRET, webhook.requests[0][0]["X-Quantrac-Signature"], webhook.requests[0][1]
    )


def test_gives_up_after_max_attempts_and_logs_it(setup: Any) -> None:
    settings, _, _ = setup
    n = new_notifier(settings.model_copy(update={"notify_max_attempts": 2}))
    url = settings.database_url
    store(url, event("V1", "opened", 0))
    wait_until(
        lambda: n.run_once() is not None and any(r["status"] == "failed" for r in log_rows(url)),
        30,
        0.2,
    )
    [hook] = [r for r in log_rows(url) if r["channel"] == "ops"]
    assert (hook["status"], hook["attempts"]) == ("failed", 2)
    text = n.metrics.registry.get_sample_value(
        "quantrac_notifications_total", {"channel_type": "webhook", "outcome": "failed"}
    )
    assert text == 1.0
    sent = n.metrics.registry.get_sample_value(
        "quantrac_notifications_total", {"channel_type": "email", "outcome": "sent"}
    )
    assert sent == 1.0


def test_events_before_the_first_start_are_history(setup: Any) -> None:
    settings, _, webhook = setup
    webhook.start()
    url = settings.database_url
    store(url, event("OLD", "opened", 0))
    with psycopg.connect(url, autocommit=True) as conn:  # the notifier starts after it
        conn.execute("INSERT INTO notification_state VALUES ('since', now() + interval '1 second')")
    time.sleep(1.1)
    n = new_notifier(settings)
    store(url, event("NEW", "opened", 0, parameter="TSS", rule="qcvn40-tss-1h"))
    settle(n)
    assert [d["violation"]["violation_id"] for d in webhook.documents()] == ["NEW"]


def test_the_scan_window_follows_the_news(setup: Any) -> None:
    """Drained, 'since' moves up to an hour ago: old seen events are no longer scanned."""
    settings, _, webhook = setup
    webhook.start()
    url = settings.database_url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO notification_state VALUES ('since', now() - interval '3 days')")
    n = new_notifier(settings)
    store(url, event("V1", "opened", 0))
    with psycopg.connect(url, autocommit=True) as conn:  # a mark from long ago
        conn.execute("INSERT INTO notification_seen VALUES ('OLD', 0, now() - interval '2 days')")
    settle(n)
    assert [d["violation"]["violation_id"] for d in webhook.documents()] == ["V1"]
    with psycopg.connect(url) as conn:
        lag = conn.execute(
            "SELECT now() - value FROM notification_state WHERE key = 'since'"
        ).fetchone()
        marks = conn.execute("SELECT violation_id FROM notification_seen ORDER BY 1").fetchall()
    assert lag is not None and timedelta(minutes=59) < lag[0] <= timedelta(hours=1, minutes=1)
    assert marks == [("V1",)]


def test_cli_refuses_bad_rules_and_missing_secrets(tmp_path: Path, database_url: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - name: r\n    channels: [nowhere]\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "QUANTRAC_DATABASE_URL": database_url,
        "QUANTRAC_KAFKA_URL": "kafka://127.0.0.1:1",
    }
    quantrac = [sys.executable, "-m", "quantrac_cli"]
    check = subprocess.run(
        [*quantrac, "notify", "--check", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert check.returncode == 2, check.stderr
    assert "channel 'nowhere' is not one of" in check.stderr and "Traceback" not in check.stderr
    ok = subprocess.run(
        [*quantrac, "notify", "--check", str(ROOT / "deploy" / "notify-rules.example.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0 and "OK, 3 route(s)" in ok.stdout
    # a webhook route without the signing secret: refused at start, naming the variable
    rules = write_rules(tmp_path, free_port())
    run = subprocess.run(
        [*quantrac, "notify"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**env, "QUANTRAC_NOTIFY_RULES": str(rules), "QUANTRAC_NOTIFY_SMTP_HOST": "127.0.0.1"},
    )
    assert run.returncode == 2
    assert "QUANTRAC_NOTIFY_WEBHOOK_SECRET is unset" in run.stderr
    assert "Traceback" not in run.stderr


def test_console_shows_the_delivery_log(setup: Any, tmp_path: Path) -> None:
    from console.app import create_app
    from console.auth import create_user

    settings, _, webhook = setup
    webhook.start()
    url = settings.database_url
    n = new_notifier(settings)
    store(url, event("V1", "opened", 0))
    settle(n)
    password = "correct horse battery"
    for name, role in (("op", "operator"), ("reg", "regulator")):
        create_user(url, name, password, role)
    app = create_app(Settings(database_url=url, data_dir=tmp_path))

    async def check() -> None:
        async with app.router.lifespan_context(app):
            for who, want in (("op", 200), ("reg", 403)):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    await c.get("/login")
                    login = await c.post(
                        "/login",
                        data={
                            "username": who,
                            "password": password,
                            "csrf_token": c.cookies.get("qt_login_csrf") or "",
                        },
                    )
                    assert login.status_code == 303, login.text
                    api = await c.get("/api/notifications")
                    html = await c.get("/notifications?lang=en")
                    assert (api.status_code, html.status_code) == (want, want), who
                    if want == 200:
                        got = {(d["channel"], d["status"]) for d in api.json()}
                        assert got == {("duty", "sent"), ("ops", "sent")}
                        assert "Notification deliveries" in html.text
                        assert html.text.count('class="n-sent"') == 2
                        assert "t0k" not in html.text and "t0k" not in api.text
                        failed = await c.get("/api/notifications?status=failed")
                        assert failed.json() == []
                        other = await c.get("/notifications?violation_id=V2")
                        assert 'class="n-sent"' not in other.text
                        assert 'id="no-notifications"' in other.text
                        detail = await c.get("/violations/V1")
                        assert 'href="/notifications?violation_id=V1"' in detail.text

    asyncio.run(check())


def test_quantrac_notify_process_with_the_demo_rules(db: str, tmp_path: Path) -> None:
    """The real process: the demo's rules (a local file), its /metrics, SIGTERM stops it."""
    import signal

    from notify.rules import demo_rules

    sink = tmp_path / "notifications.jsonl"
    rules = tmp_path / "demo-rules.yaml"
    rules.write_text(yaml.safe_dump(demo_rules(sink)))
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "QUANTRAC_DATABASE_URL": db,
        "QUANTRAC_KAFKA_URL": "kafka://127.0.0.1:1",  # required by every process, unused here
        "QUANTRAC_DATA_DIR": str(tmp_path),
        "QUANTRAC_NOTIFY_RULES": str(rules),
        "QUANTRAC_NOTIFY_POLL_S": "0.2",
        "QUANTRAC_NOTIFY_PORT": str(port),
    }
    with open(tmp_path / "notify.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "quantrac_cli", "notify"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    log_tail = lambda: (tmp_path / "notify.log").read_text()[-3000:]  # noqa: E731
    try:

        def started() -> bool:
            with psycopg.connect(db) as conn:
                return bool(
                    conn.execute(
                        "SELECT 1 FROM information_schema.tables"
                        " WHERE table_name = 'notification_state'"
                    ).fetchone()
                    and conn.execute("SELECT 1 FROM notification_state").fetchone()
                )

        wait_until(started, 60, 0.2, log_tail)
        store(db, event("V1", "opened", 0), event("V1", "updated", 1), event("V1", "closed", 2))
        wait_until(
            lambda: sink.exists() and len(sink.read_text().splitlines()) == 2, 60, 0.2, log_tail
        )
        kinds = [json.loads(line)["kind"] for line in sink.read_text().splitlines()]
        assert kinds == ["episode", "closed"]
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'quantrac_notifications_total{channel_type="file",outcome="sent"} 2.0' in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log_tail()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_pipeline_exceedance_to_mail_and_webhook(
    settings: Settings,
    worker: Any,
    smtp: tuple[Mailbox, int],
    webhook: Receiver,
    tmp_path: Path,
) -> None:
    """Readings through the real broker and worker: an hourly COD exceedance episode at HD-NT-01
    (QCVN 40:2011 B × Kq 1.1 × Kf 0.9 = 148.5 mg/L; tests/integration/test_pipeline.py) is one
    e-mail and one signed webhook, and its close one more each."""
    from core.records import Channel, RawReading
    from core.topics import RAW, bootstrap_servers, ensure_topics
    from stations.feed import KafkaFeed

    url = settings.database_url
    assert url
    migrate(url)
    ensure_topics(settings)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "channels": {
                    "duty": {"type": "email", "to": ["duty@example.vn"]},
                    "ops": {"type": "webhook", "url": f"http://127.0.0.1:{webhook.port}/h"},
                },
                "routes": [
                    {
                        "name": "outfalls",
                        "match": {"sources": ["HD-NT-01"], "kinds": ["exceedance"]},
                        "channels": ["duty", "ops"],
                        "notify_close": True,
                    }
                ],
            }
        )
    )
    mailbox, smtp_port = smtp
    webhook.start()
    n = new_notifier(notifier_settings(url, smtp_port, rules, tmp_path))

    step = timedelta(minutes=5)
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=10)
    levels = [100, 100, 230, 230, 100, 100, 100]  # hourly levels; 230 / 148.5 = 1.55
    readings = [
        RawReading(
            source_id="HD-NT-01",
            parameter="COD",
            value=round(level + 60 * math.sin(k * 2.3), 3),  # as test_pipeline._noisy
            unit="mg/L",
            measured_at=t0 + h * timedelta(hours=1) + k * step,
            status="00",
            received_at=datetime.now(UTC),
            channel=Channel.SIMULATOR.value,
            origin=f"test:{h}:{k}",
        )
        for h, level in enumerate(levels)
        for k in range(12)
    ]

    async def produce() -> None:
        async with KafkaFeed(bootstrap_servers(settings), settings.topic(RAW.name)) as feed:
            await feed.send(readings)

    asyncio.run(produce())
    worker.start()

    def closed_notice() -> bool:
        n.run_once()
        return any(d["kind"] == "closed" for d in webhook.documents())

    wait_until(closed_notice, 240, 0.5, worker.log)
    settle(n)
    docs = webhook.documents()
    assert [d["kind"] for d in docs] == ["episode", "closed"], docs
    assert docs[0]["violation"]["source_id"] == "HD-NT-01"
    assert docs[0]["violation"]["parameter"] == "COD"
    assert all(channels.verify(SECRET, h["X-Quantrac-Signature"], b) for h, b in webhook.requests)
    mails = mailbox.to("duty@example.vn")
    assert len(mails) == 2
    assert mails[0]["Subject"].startswith("[quantrac] opened: HD-NT-01 COD")
    assert mails[1]["Subject"].startswith("[quantrac] closed: HD-NT-01 COD")
    with psycopg.connect(url) as conn:  # the episode had more events than messages
        row = conn.execute(
            "SELECT count(*) FROM violation_events e JOIN violations v USING (violation_id)"
            " WHERE v.kind = 'exceedance' AND v.source_id = 'HD-NT-01'"
        ).fetchone()
    assert row is not None and row[0] > 2


def test_database_down_then_up_the_notifier_goes_on(
    setup: Any, pg_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL stopped under a running notifier: its rounds fail and are logged, it stays up,
    and once the database is back the next violation is delivered, nothing twice."""
    from streams.embedded import EmbeddedPostgres

    assert isinstance(pg_server, EmbeddedPostgres), "stopping PostgreSQL needs the embedded one"
    settings, mailbox, webhook = setup
    webhook.start()
    url = settings.database_url
    n = new_notifier(settings.model_copy(update={"notify_poll_s": 0.2}))
    stop = threading.Event()
    loop = threading.Thread(target=n.run, args=(stop,), daemon=True)
    loop.start()
    try:
        store(url, event("V1", "opened", 0))
        wait_until(lambda: {r["status"] for r in log_rows(url)} == {"sent"}, 30, 0.2)
        try:
            pg_server.pg_ctl("stop")
            wait_until(lambda: "database unavailable" in caplog.text, 30, 0.2)
            assert loop.is_alive()
        finally:
            pg_server.pg_ctl("start")
        store(url, event("V3", "opened", 0, parameter="TSS", rule="qcvn40-tss-1h"))
        wait_until(lambda: len(webhook.requests) == 2 and len(mailbox.messages) == 2, 60, 0.2)
    finally:
        stop.set()
        loop.join(30)
    assert not loop.is_alive()
    assert [d["violation"]["violation_id"] for d in webhook.documents()] == ["V1", "V3"]

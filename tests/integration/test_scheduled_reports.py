"""Scheduled monthly reports (issue 21) against the real PostgreSQL and a real SMTP server
(aiosmtpd on 127.0.0.1): October 2026's fixture month (tests/integration/test_reports.py) is
reported on 2 November, stored once (a second run, here through the CLI, adds nothing),
e-mailed with the files attached, listed and downloaded in the console, and audited."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from console.app import create_app
from console.auth import create_user
from core.settings import Settings
from reports.scheduler import run_once
from stations.registry import load_registry
from streams.embedded import free_port
from tests.integration.test_reports import KK, NT, insert_dataset

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 2 Nov 08:00 local: October is due
REGULATOR, AUDITOR = "so-tnmt@example.vn", "thanh-tra@example.vn"
PASSWORD = "a-long-test-passphrase"


class Inbox:
    """aiosmtpd handler: keeps every accepted message with its envelope."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (
                list(envelope.rcpt_tos),
                email.message_from_bytes(envelope.content, policy=email.policy.default),
            )
        )
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def attachments(msg: Message) -> dict[str, bytes]:
    out = {}
    for part in msg.walk():
        name = part.get_filename()
        if name:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[name] = payload
    return out


def test_monthly_reports_stored_once_mailed_listed_downloaded_audited(
    database_url: str, tmp_path: Path, inbox: tuple[Inbox, int]
) -> None:
    handler, smtp_port = inbox
    insert_dataset(database_url)  # migrates, October 2026 of HD-NT-01 and HD-KK-01
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        schedule_catch_up_months=1,
        schedule_smtp_host="127.0.0.1",
        schedule_smtp_port=smtp_port,
        schedule_smtp_starttls=False,
        schedule_recipients_compliance=f"{REGULATOR}, {AUDITOR}",
        schedule_recipients_quality=REGULATOR,
    )

    summary = run_once(settings, AT, only=[NT, KK])
    assert (summary.due, summary.done, summary.failed, summary.refused) == (2, 2, 0, 0), summary
    assert summary.mailed == 2 and summary.mail_failed == 0, summary

    # run twice: the second run, through the command line, makes and mails nothing
    env = dict(
        os.environ,
        QUANTRAC_DATABASE_URL=database_url,
        QUANTRAC_DATA_DIR=str(tmp_path),
        QUANTRAC_SCHEDULE_SMTP_HOST="127.0.0.1",
        QUANTRAC_SCHEDULE_SMTP_PORT=str(smtp_port),
        QUANTRAC_SCHEDULE_SMTP_STARTTLS="false",
        QUANTRAC_SCHEDULE_RECIPIENTS_COMPLIANCE=REGULATOR,
        QUANTRAC_SCHEDULE_CATCH_UP_MONTHS="1",
    )
    r = subprocess.run(
        [sys.executable, "-m", "quantrac_cli", "scheduler", "--once", "--at", AT.isoformat(),
         "--source", f"{NT},{KK}"],
        cwd=ROOT, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "scheduled reports: 0 due: 0 stored" in err and "0 e-mail(s) sent" in err, err
    assert r.stdout == b""
    r = subprocess.run(
        [sys.executable, "-m", "quantrac_cli", "scheduler", "--list", "--json"],
        cwd=ROOT, env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    listed = json.loads(r.stdout)
    assert sorted((x["subject"], x["period"], x["status"]) for x in listed) == [
        (KK, "2026-10", "done"),
        (NT, "2026-10", "done"),
    ]

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id, kind, subject, facility, period, status, filename, content, sha256,"
            " mailed_to FROM scheduled_reports ORDER BY kind"
        ).fetchall()
        audit = conn.execute(
            "SELECT actor, action, target FROM audit_log WHERE target LIKE 'scheduled_report:%'"
        ).fetchall()
    assert [(r[1], r[2], r[4], r[5]) for r in rows] == [
        ("air-quality", KK, "2026-10", "done"),
        ("compliance", NT, "2026-10", "done"),
    ]
    stored = {r[6]: bytes(r[7]) for r in rows}
    assert all(content.startswith(b"%PDF-") for content in stored.values())
    facility = load_registry().get(NT).facility
    assert rows[1][3] == facility
    assert rows[0][9] == [REGULATOR] and rows[1][9] == [REGULATOR, AUDITOR]

    # e-mailed once each, the stored files attached byte for byte
    assert len(handler.messages) == 2
    by_subject = {m["Subject"]: (to, m) for to, m in handler.messages}
    (to_c, mail_c), = [v for k, v in by_subject.items() if "tuân thủ" in k]  # fmt: skip
    (to_q, mail_q), = [v for k, v in by_subject.items() if "chất lượng" in k]  # fmt: skip
    assert sorted(to_c) == sorted([REGULATOR, AUDITOR]) and to_q == [REGULATOR]
    assert "10/2026" in mail_c["Subject"] and str(facility) in mail_c["Subject"]
    assert attachments(mail_c) == {rows[1][6]: stored[rows[1][6]]}
    assert attachments(mail_q) == {rows[0][6]: stored[rows[0][6]]}

    actions = [(a, act) for a, act, _ in audit]
    assert actions.count(("scheduler", "scheduled_report_done")) == 2
    assert actions.count(("scheduler", "scheduled_report_mailed")) == 2

    # the console: regulators (and admins) list and download; operators may not
    create_user(database_url, "reg", PASSWORD, "regulator")
    create_user(database_url, "ops", PASSWORD, "operator")
    with TestClient(create_app(settings, poll_interval_s=0.2)) as client:
        login(client, "ops")
        assert client.get("/api/scheduled-reports").status_code == 403
        assert client.get(f"/api/scheduled-reports/{rows[0][0]}/download").status_code == 403
        client.cookies.clear()
        login(client, "reg")
        listed = client.get("/api/scheduled-reports", params={"period": "2026-10"})
        assert listed.status_code == 200, listed.text
        assert {(x["subject"], x["status"]) for x in listed.json()} == {(NT, "done"), (KK, "done")}
        page = client.get("/scheduled-reports")
        assert page.status_code == 200
        for rid, *_ in rows:
            assert f"/api/scheduled-reports/{rid}/download" in page.text
        got = client.get(f"/api/scheduled-reports/{rows[1][0]}/download")
        assert got.status_code == 200
        assert got.content == stored[rows[1][6]]
        assert got.headers["content-type"] == "application/pdf"
        assert rows[1][6] in got.headers["content-disposition"]
        assert client.get("/api/scheduled-reports/999999/download").status_code == 404

    with psycopg.connect(database_url) as conn:
        downloads = conn.execute(
            "SELECT actor, target, detail->>'sha256' FROM audit_log"
            " WHERE action = 'scheduled_report_downloaded'"
        ).fetchall()
    assert downloads == [("reg", f"scheduled_report:{rows[1][0]}", rows[1][8])]


def login(client: TestClient, username: str) -> None:
    client.get("/login")
    token = client.cookies.get("qt_login_csrf")
    r = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def test_a_failed_send_keeps_the_report_and_is_retried(database_url: str, tmp_path: Path) -> None:
    insert_dataset(database_url)
    port = free_port()  # nothing listens there yet: the first send fails
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        schedule_catch_up_months=1,
        schedule_format="csv",
        schedule_smtp_host="127.0.0.1",
        schedule_smtp_port=port,
        schedule_smtp_starttls=False,
        schedule_recipients_quality=REGULATOR,
    )
    first = run_once(settings, AT, only=[KK])
    assert (first.done, first.mailed, first.mail_failed) == (1, 0, 1), first
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status, mailed_at, mail_attempts, mail_error FROM scheduled_reports"
        ).fetchone()
    assert row is not None and row[:3] == ("done", None, 1) and f":{port}" in row[3], row

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        second = run_once(settings, AT, only=[KK])
    finally:
        controller.stop()
    assert (second.due, second.mailed, second.mail_failed) == (0, 1, 0), second
    assert len(handler.messages) == 1 and handler.messages[0][0] == [REGULATOR]
    (name, data), = attachments(handler.messages[0][1]).items()  # fmt: skip
    assert name.endswith(".csv") and data.startswith(b"\xef\xbb\xbf")  # the stored CSV
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT mailed_at IS NOT NULL, mail_attempts, mail_error FROM scheduled_reports"
        ).fetchone()
        failed = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'scheduled_report_mail_failed'"
        ).fetchone()
    assert row == (True, 2, None) and failed == (1,)


def test_the_scheduler_process_serves_healthz_and_stops_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    import signal
    import socket
    import urllib.error
    import urllib.request

    from tests.conftest import wait_until

    port = free_port()
    env = dict(
        os.environ,
        QUANTRAC_DATABASE_URL=database_url,
        QUANTRAC_DATA_DIR=str(tmp_path),
        QUANTRAC_SCHEDULE_PORT=str(port),
        QUANTRAC_SCHEDULE_CATCH_UP_MONTHS="1",
        QUANTRAC_SCHEDULE_FORMAT="csv",
    )
    with socket.socket() as held:  # a port in use is named, exit 2
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = env | {"QUANTRAC_SCHEDULE_PORT": str(held.getsockname()[1])}
        r = subprocess.run(
            [sys.executable, "-m", "quantrac_cli", "scheduler"],
            cwd=ROOT, env=taken, capture_output=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 2 and "QUANTRAC_SCHEDULE_PORT" in r.stderr.decode(), r.stderr

    log = open(tmp_path / "scheduler.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "quantrac_cli", "scheduler", "--source", KK],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    health: dict[str, Any] = {}
    try:

        def ran() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    health.update(json.loads(r.read()))
            except (urllib.error.URLError, OSError):
                return False
            return health.get("last_run") is not None

        wait_until(ran, 120, message=lambda: (tmp_path / "scheduler.log").read_text()[-2000:])
        assert health["status"] == "ok" and health["error"] is None, health
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM scheduled_reports").fetchone() == (1,)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (tmp_path / "scheduler.log").read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


def test_one_message_per_facility_with_each_sources_report(
    database_url: str, tmp_path: Path, inbox: tuple[Inbox, int]
) -> None:
    handler, smtp_port = inbox
    insert_dataset(database_url)
    registry = load_registry()
    facility = registry.get(NT).facility
    assert facility is not None
    siblings = sorted(s.id for s in registry.sources if s.facility == facility)
    assert NT in siblings and len(siblings) >= 2  # an outfall and stacks of one plant
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        schedule_catch_up_months=1,
        schedule_format="xlsx",
        schedule_lang="en",
        schedule_smtp_host="127.0.0.1",
        schedule_smtp_port=smtp_port,
        schedule_smtp_starttls=False,
        schedule_recipients_compliance=REGULATOR,
    )
    summary = run_once(settings, AT, only=siblings)
    assert (summary.done, summary.mailed) == (len(siblings), 1), summary
    (to, msg), = handler.messages  # fmt: skip
    assert to == [REGULATOR]
    assert msg["Subject"].startswith("Monitoring compliance report, 10/2026 — " + facility)
    files = attachments(msg)
    assert sorted(files) == sorted(f"compliance_{s}_2026-10.xlsx" for s in siblings)
    assert all(data[:2] == b"PK" for data in files.values())  # xlsx: a zip
    assert isinstance(msg, EmailMessage)  # policy.default parses to EmailMessage
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None and all(name in body.get_content() for name in files)

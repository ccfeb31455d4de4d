"""Manual validation through the console (issue 21) against the real embedded broker and a real
PostgreSQL: the decision is stored, audited and produced to readings.raw in one transaction;
refusals store and produce nothing; a broker that is down answers 503 with nothing stored.

The console is the one of tests/integration/test_console_api.py (its sources, users and login);
here it also gets the test's broker and topics (tests/conftest.py ``settings``).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import yaml
from fastapi import FastAPI
from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord

from console.app import create_app
from core.records import ManualValidation
from core.settings import Settings
from core.topics import RAW, bootstrap_servers, ensure_topics
from streams.embedded import free_port
from streams.runtime import child_env
from tests.integration.drain import true_end_offsets
from tests.integration.test_console_api import (
    PASSWORD,
    audit_rows,
    clients,
    db,
    login,
    new_client,
    running,
)
from tests.integration.test_deploy_files import K8S, env_file, services

pytestmark = pytest.mark.integration
__all__ = ["clients", "db"]  # fixtures used by name

SOURCE = "HD-KK-01"  # measures PM2.5, SO2, WS (test_console_api.AIR_SPEC)
URL = f"/api/sources/{SOURCE}/validations"


@pytest.fixture
def app(db: str, settings: Settings) -> FastAPI:
    """The console with the test's broker and topics (``clients`` logs in one user per role)."""
    ensure_topics(settings)
    return create_app(settings.model_copy(update={"database_url": db}), poll_interval_s=0.2)


def body(**kw: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "parameter": "PM2.5",
        "start": (now - timedelta(hours=5)).isoformat(),
        "end": (now - timedelta(hours=2)).isoformat(),
        "action": "invalidate",
        "reason": "maintenance",
        "note": "filter changed on site",
    } | kw


def raw_records(settings: Settings, timeout_s: float = 15.0) -> list[ConsumerRecord]:
    """Every record on the test's readings.raw, read from the start of each partition."""
    topic = settings.topic(RAW.name)
    bootstrap = bootstrap_servers(settings)
    ends = {tp: end for tp, end in true_end_offsets(bootstrap, [topic]).items() if end > 0}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    got: list[ConsumerRecord] = []
    try:
        if not ends:
            return got
        consumer.assign(list(ends))
        consumer.seek_to_beginning(*ends)
        deadline = time.monotonic() + timeout_s
        while len(got) < sum(ends.values()) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
        return got
    finally:
        consumer.close()


def stored(conninfo: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT id, source_id, parameter, period_start, period_end, action, reason, note,"
            " by_user, applied_at FROM manual_validations ORDER BY id"
        ).fetchall()


async def test_an_operator_invalidates_a_period_stored_audited_and_produced(
    clients: Any, db: str, settings: Settings
) -> None:
    c, csrf = clients["op"]
    b = body()
    r = await c.post(URL, json=b, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 202, r.text
    row = r.json()
    assert row["status"] == "pending" and row["applied_at"] is None
    assert (row["source_id"], row["parameter"], row["action"], row["reason"]) == (
        SOURCE,
        "PM2.5",
        "invalidate",
        "maintenance",
    )
    assert (row["by_user"], row["note"]) == ("op", "filter changed on site")
    start, end = datetime.fromisoformat(b["start"]), datetime.fromisoformat(b["end"])
    assert datetime.fromisoformat(row["period_start"]) == start
    assert datetime.fromisoformat(row["period_end"]) == end

    (db_row,) = stored(db)
    assert db_row[0] == row["id"] and db_row[1:9] == (
        SOURCE,
        "PM2.5",
        start,
        end,
        "invalidate",
        "maintenance",
        "filter changed on site",
        "op",
    )
    assert db_row[9] is None  # pending until the worker applies it

    (audit,) = audit_rows(db, "manual_validation")
    assert audit[0] == "op" and audit[1] == f"source:{SOURCE}"
    assert audit[2] == {
        "id": row["id"],
        "parameter": "PM2.5",
        "start": start.astimezone(UTC).isoformat(),
        "end": end.astimezone(UTC).isoformat(),
        "action": "invalidate",
        "reason": "maintenance",
        "note": "filter changed on site",
    }

    (record,) = await asyncio.to_thread(raw_records, settings)
    assert record.key == SOURCE.encode()
    message = ManualValidation.from_data(json.loads(record.value))
    assert message == ManualValidation(
        id=row["id"],
        source_id=SOURCE,
        parameter="PM2.5",
        start=start,
        end=end,
        action="invalidate",
        reason="maintenance",
        note="filter changed on site",
        by="op",
        at=datetime.fromisoformat(row["at"]),
    )


async def test_the_list_is_newest_first_with_pending_and_applied(clients: Any, db: str) -> None:
    op, csrf_op = clients["op"]
    adm, csrf_adm = clients["adm"]
    first = await op.post(URL, json=body(parameter=None), headers={"X-CSRF-Token": csrf_op})
    assert first.status_code == 202, first.text
    assert first.json()["parameter"] is None  # every parameter of the source
    # a restore by an admin in local time without an offset (Asia/Ho_Chi_Minh: UTC+7, no DST)
    start = (datetime.now(UTC) + timedelta(hours=7 - 4)).replace(
        tzinfo=None, second=0, microsecond=0
    )
    second = await adm.post(
        URL,
        json=body(
            parameter="SO2",
            start=start.isoformat(timespec="minutes"),
            end=(start + timedelta(hours=1)).isoformat(timespec="minutes"),
            action="restore",
            reason="other",
            note="analyser checked, data good",
        ),
        headers={"X-CSRF-Token": csrf_adm},
    )
    assert second.status_code == 202, second.text
    naive_start = datetime.fromisoformat(second.json()["period_start"])
    assert naive_start.astimezone(UTC).replace(tzinfo=None) == start - timedelta(hours=7)

    with psycopg.connect(db, autocommit=True) as conn:  # the worker's part, by hand
        conn.execute(
            "UPDATE manual_validations SET applied_at = now() WHERE id = %s",
            (first.json()["id"],),
        )
    reg, _ = clients["reg"]  # any logged-in role reads the list
    listed = (await reg.get(URL)).json()
    assert [v["id"] for v in listed] == [second.json()["id"], first.json()["id"]]
    assert [v["status"] for v in listed] == ["pending", "applied"]
    assert listed[1]["applied_at"] is not None
    assert (await reg.get("/api/sources/NOPE/validations")).status_code == 404


async def test_regulators_and_strangers_may_not_decide(clients: Any, db: str) -> None:
    reg, csrf = clients["reg"]
    r = await reg.post(URL, json=body(), headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403 and "may not validate data" in r.json()["detail"]
    op, _ = clients["op"]
    assert (await op.post(URL, json=body())).status_code == 403  # no CSRF token
    anon, _ = clients["anon"]
    assert (await anon.post(URL, json=body())).status_code == 401
    assert (await anon.get(URL)).status_code == 401
    assert stored(db) == []


async def test_each_refusal_says_why_and_stores_and_produces_nothing(
    clients: Any, db: str, settings: Settings
) -> None:
    c, csrf = clients["op"]
    now = datetime.now(UTC)
    cases = [
        ("/api/sources/HD-XX-99/validations", body(), 404, "no source 'HD-XX-99'"),
        (URL, body(parameter="COD"), 422, "does not measure 'COD'"),
        (URL, body(end=body()["start"]), 422, "must end after it starts"),
        (
            URL,
            body(
                start=(now + timedelta(hours=1)).isoformat(),
                end=(now + timedelta(hours=2)).isoformat(),
            ),
            422,
            "starts in the future",
        ),
        (URL, body(reason="other", note=" "), 422, "reason 'other' needs a note"),
        (
            URL,
            body(
                start=(now - timedelta(hours=1)).isoformat(),
                end=(now + timedelta(days=31)).isoformat(),
            ),
            422,
            "longer than 31 days",
        ),
        (
            URL,
            body(
                start=(now - timedelta(hours=80)).isoformat(),
                end=(now - timedelta(hours=70)).isoformat(),
            ),
            422,
            "older than the late horizon (72 h before now",
        ),
    ]
    for url, b, status, words in cases:
        r = await c.post(url, json=b, headers={"X-CSRF-Token": csrf})
        assert r.status_code == status, (words, r.text)
        assert words in r.json()["detail"], r.json()
    bad = await c.post(URL, json=body(reason="boredom"), headers={"X-CSRF-Token": csrf})
    assert bad.status_code == 422 and "maintenance" in bad.text  # the allowed values
    assert stored(db) == [] and audit_rows(db, "manual_validation") == []
    assert await asyncio.to_thread(raw_records, settings, 2.0) == []


async def test_the_source_page_shows_the_form_to_operators_and_the_list_to_all(
    clients: Any,
) -> None:
    op, csrf = clients["op"]
    r = await op.post(URL, json=body(), headers={"X-CSRF-Token": csrf})
    assert r.status_code == 202
    vid = r.json()["id"]
    page = (await op.get(f"/sources/{SOURCE}?lang=en")).text
    assert 'id="manual-validation"' in page and 'id="mv-form"' in page
    assert "Manual validation" in page and "All parameters" in page
    assert f'<tr class="mv-row-invalidate" data-id="{vid}">' in page
    assert "Maintenance" in page and "filter changed on site" in page and "Pending" in page
    assert f'class="mv-restore" data-id="{vid}" data-parameter="PM2.5"' in page
    assert '<script src="/static/manual_validation.js" defer></script>' in page

    reg, _ = clients["reg"]
    page = (await reg.get(f"/sources/{SOURCE}?lang=en")).text
    assert f'<tr class="mv-row-invalidate" data-id="{vid}">' in page
    assert 'id="mv-form"' not in page and "mv-restore" not in page
    vi = (await reg.get(f"/sources/{SOURCE}?lang=vi")).text
    assert "Đánh giá số liệu thủ công" in vi and "Bảo trì" in vi

    # the Restore button's request: the same period and parameter, restored, then no button
    restore = await op.post(
        URL,
        json=body(
            start=r.json()["period_start"],
            end=r.json()["period_end"],
            action="restore",
            note=f"restores #{vid}",
        ),
        headers={"X-CSRF-Token": csrf},
    )
    assert restore.status_code == 202, restore.text
    page = (await op.get(f"/sources/{SOURCE}?lang=en")).text
    assert 'button type="button" class="mv-restore"' not in page
    assert f'<tr class="mv-row-restore" data-id="{restore.json()["id"]}">' in page


async def test_a_broker_that_is_down_answers_503_and_nothing_is_stored(
    db: str, tmp_path: Path
) -> None:
    down = Settings(
        database_url=db, kafka_url=f"kafka://127.0.0.1:{free_port()}", data_dir=tmp_path
    )
    app = create_app(down, poll_interval_s=0.2)
    async with running(app), new_client(app) as c:  # the console starts without its broker
        csrf = await login(c, "op", PASSWORD)
        began = time.monotonic()
        r = await c.post(URL, json=body(), headers={"X-CSRF-Token": csrf})
        assert r.status_code == 503, r.text
        assert "nothing was stored" in r.json()["detail"]
        assert "unreachable" in r.json()["detail"]
        assert time.monotonic() - began < 15
        assert (await c.get(URL)).json() == []  # the rest of the console works
        assert (await c.get(f"/sources/{SOURCE}")).status_code == 200
    assert stored(db) == [] and audit_rows(db, "manual_validation") == []


async def test_a_console_without_a_broker_setting_answers_503(db: str, tmp_path: Path) -> None:
    app = create_app(Settings(database_url=db, data_dir=tmp_path), poll_interval_s=0.2)
    async with running(app), new_client(app) as c:
        csrf = await login(c, "adm", PASSWORD)
        r = await c.post(URL, json=body(), headers={"X-CSRF-Token": csrf})
        assert r.status_code == 503 and "QUANTRAC_KAFKA_URL" in r.json()["detail"]
    assert stored(db) == []


def test_the_deployed_console_gets_the_broker() -> None:
    """The console produces decisions: compose gives it the broker's address and starts it after
    the broker; the Kubernetes console reads the same ConfigMap as the workers; the demo's
    children get every resolved setting, the embedded broker's URL included."""
    console = services()["console"]
    files = [Path(f).name for f in console["env_file"]]
    urls = [env_file(f).get("QUANTRAC_KAFKA_URL") for f in files]
    assert any(u and urlsplit(u).hostname in services() for u in urls), urls
    assert console["depends_on"]["kafka"]["condition"] == "service_healthy"
    docs = [d for d in yaml.safe_load_all((K8S / "console.yaml").read_text()) if d]
    (container,) = docs[0]["spec"]["template"]["spec"]["containers"]
    maps = [e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e]
    config = yaml.safe_load((K8S / "configmap.yaml").read_text())
    assert config["metadata"]["name"] in maps and config["data"]["QUANTRAC_KAFKA_URL"]
    resolved = Settings(kafka_url="kafka://127.0.0.1:9", database_url="postgresql:///x")
    assert child_env(resolved)["QUANTRAC_KAFKA_URL"] == "kafka://127.0.0.1:9"

"""What one station account may cost the gateway (stations/ingest_limits.py), on the real
embedded broker: rejections capped per delivery, deliveries per minute, FTP connections per IP,
parsing off the event loop, and the publish and archive failure counters."""

from __future__ import annotations

import ftplib
import io
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from core.topics import ensure_topics
from stations.registry import Registry
from streams.embedded import EmbeddedBroker
from tests.integration.gateway_support import (
    AIR,
    gw_settings,
    read_topic,
    registry,
    running_gateway,
)

pytestmark = pytest.mark.integration
__all__ = ["gw_settings", "registry"]  # fixtures used by name

# ~1 MB of lines that are each a field-count error: 70 k dead letters before the cap
GARBAGE = b"garbage line\n" * (1_000_000 // 13)


def _auth(gw: object, source_id: str) -> tuple[str, str]:
    return (source_id, gw.password(source_id))  # type: ignore[attr-defined]


def test_a_body_of_garbage_lines_makes_at_most_n_plus_one_rejections(
    gw_settings: Settings, registry: Registry
) -> None:
    settings = gw_settings.model_copy(update={"gateway_max_rejections": 20})
    with running_gateway(settings, registry) as gw:
        r = httpx.post(
            f"{gw.http_url}/ingest/file/{AIR}",
            content=GARBAGE,
            auth=_auth(gw, "HD-KK-01"),
            timeout=120,
        )
        rejected = read_topic(settings, "readings.rejected", 21, timeout_s=30)
        counted = gw.counter("quantrac_rejections_total", channel="http", reason="field_count")
    assert r.status_code == 400, r.text
    lines = GARBAGE.count(b"\n")
    assert len(rejected) == 21 and r.json()["rejected"] == 21
    assert [m.value["reason"] for m in rejected[:20]] == ["field_count"] * 20
    summary = rejected[20].value
    assert summary["reason"] == "too_many_rejections"
    assert f"{lines - 20} more rejections" in summary["message"]
    assert f"field_count × {lines - 20}" in summary["message"]
    assert f"lines 21–{lines}" in summary["message"]
    assert counted == lines  # every judged line is counted, also those summarised


def test_the_delivery_over_the_rate_is_refused(gw_settings: Settings, registry: Registry) -> None:
    settings = gw_settings.model_copy(update={"gateway_deliveries_per_minute": 3})
    body = b'{"source_id": "HD-KK-01", "readings": []}'
    with running_gateway(settings, registry) as gw:
        codes = [
            httpx.post(f"{gw.http_url}/ingest", content=body, auth=_auth(gw, "HD-KK-01"))
            for _ in range(4)
        ]
        other = httpx.post(
            f"{gw.http_url}/ingest",
            content=b'{"source_id": "HD-KK-02", "readings": []}',
            auth=_auth(gw, "HD-KK-02"),
        )
        with ftplib.FTP() as ftp:
            ftp.connect("127.0.0.1", gw.ftp_port, timeout=10)
            ftp.login("HD-KK-03", gw.password("HD-KK-03"))
            for _ in range(3):  # HD-KK-01's file name: refused as sender_mismatch, but counted
                with pytest.raises(ftplib.error_perm, match=r"^553"):
                    ftp.storbinary(f"STOR {AIR}", io.BytesIO(b"x"))
            with pytest.raises(ftplib.error_temp, match=r"^450 rate_limited"):
                ftp.storbinary(f"STOR {AIR}", io.BytesIO(b"x"))
        http_limited = gw.counter(
            "quantrac_rejections_total", channel="http", reason="rate_limited"
        )
        ftp_limited = gw.counter("quantrac_rejections_total", channel="ftp", reason="rate_limited")
    assert [c.status_code for c in codes[:3]] == [400, 400, 400]  # judged: no readings
    assert codes[3].status_code == 429 and codes[3].headers["Retry-After"] == "60"
    assert "rate_limited" in codes[3].text
    assert other.status_code == 400  # the limit is per account
    assert (http_limited, ftp_limited) == (1, 1)


def test_ftp_connections_per_ip_are_limited(gw_settings: Settings, registry: Registry) -> None:
    settings = gw_settings.model_copy(update={"gateway_ftp_max_cons_per_ip": 3})
    with running_gateway(settings, registry) as gw:
        held = []
        try:
            for _ in range(3):
                ftp = ftplib.FTP()
                ftp.connect("127.0.0.1", gw.ftp_port, timeout=10)  # reads the 220 banner
                held.append(ftp)
            with pytest.raises(ftplib.error_temp, match=r"^421"):
                ftplib.FTP().connect("127.0.0.1", gw.ftp_port, timeout=10)
        finally:
            for ftp in held:
                ftp.close()
        refused = gw.counter(
            "quantrac_rejections_total", channel="ftp", reason="too_many_connections"
        )
    assert refused == 1


def test_http_bodies_are_parsed_off_the_event_loop(
    gw_settings: Settings, registry: Registry
) -> None:
    """The parse (seconds for 1 MB of bad lines) runs on a worker thread, not the loop's."""
    with running_gateway(gw_settings, registry) as gw:
        ingest = gw.gateway.ingest
        assert ingest is not None and ingest.loop is not None
        loop_threads: list[int] = []
        ingest.loop.call_soon_threadsafe(lambda: loop_threads.append(threading.get_ident()))
        parsed_on: list[int] = []
        real = ingest.receive_file

        def recorded(*args: Any, **kwargs: Any) -> Any:
            parsed_on.append(threading.get_ident())
            return real(*args, **kwargs)

        ingest.receive_file = recorded  # type: ignore[method-assign]
        r = httpx.post(
            f"{gw.http_url}/ingest/file/{AIR}",
            content=GARBAGE,
            auth=_auth(gw, "HD-KK-01"),
            timeout=120,
        )
    assert r.status_code == 400
    assert len(parsed_on) == 1 and len(loop_threads) == 1
    assert parsed_on != loop_threads


def test_broker_down_answers_503_and_counts_the_failure(registry: Registry, tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_url=broker.url,
        data_dir=tmp_path,
        topic_prefix=f"t{tag}.",
        app_id=f"quantrac-test-{tag}",
        topic_partitions=2,
        gateway_publish_timeout_s=1.0,
    )
    ensure_topics(settings)
    body = b'{"source_id": "HD-KK-01", "readings": []}'
    try:
        with running_gateway(settings, registry) as gw:
            broker.stop()
            down = httpx.post(
                f"{gw.http_url}/ingest", content=body, auth=_auth(gw, "HD-KK-01"), timeout=30
            )
            failures = gw.counter("quantrac_gateway_publish_failures_total", channel="http")
            # HD-KK-02's folder of the day taken by a file: the archive cannot store
            (tmp_path / "archive" / "2026-11-24" / "HD-KK-02").write_bytes(b"")
            archive_down = httpx.post(
                f"{gw.http_url}/ingest",
                content=body.replace(b"HD-KK-01", b"HD-KK-02"),
                auth=_auth(gw, "HD-KK-02"),
                timeout=30,
            )
            archive_failures = gw.counter("quantrac_gateway_archive_failures_total", channel="http")
    finally:
        broker.stop()
    assert down.status_code == 503 and down.headers["Retry-After"] == "30"
    assert failures == 1
    assert archive_down.status_code == 503
    assert archive_failures == 1

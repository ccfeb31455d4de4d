"""The HTTP door against the real embedded broker: auth, JSON accept/reject, sender mismatch."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from core.settings import Settings
from stations.circular10 import MAX_FILE_BYTES
from stations.registry import Registry
from tests.integration.gateway_support import (
    AIR,
    CORPUS,
    RunningGateway,
    gw_settings,
    read_topic,
    reading,
    registry,
    running_gateway,
)

pytestmark = pytest.mark.integration
__all__ = ["gw_settings", "registry"]  # fixtures used by name

T = "20261124100500"  # 10:05 local = 03:05 UTC, five minutes before the fixed clock
SO2 = {"parameter": "SO2", "value": 12.5, "unit": "µg/Nm3", "measured_at": T, "status": "00"}
NO2 = {"parameter": "NO2", "value": 41.0, "unit": "µg/Nm3", "measured_at": T, "status": "01"}


def _doc(*readings: dict[str, Any], source_id: str = "HD-KK-01") -> bytes:
    return json.dumps({"source_id": source_id, "readings": list(readings)}).encode()


def _client(
    gw: RunningGateway, user: str | None = "HD-KK-01", password: str | None = None
) -> httpx.Client:
    auth = None if user is None else (user, password or gw.password(user))
    return httpx.Client(base_url=gw.http_url, auth=auth, timeout=15)


@pytest.mark.parametrize(
    ("user", "password", "status"),
    [
        (None, None, 401),  # no credentials
        ("HD-KK-01", "wrong", 401),
        ("HD-XX-99", "whatever", 401),  # no such account
    ],
    ids=["none", "wrong-password", "unknown-user"],
)
def test_authentication_is_required(
    gw_settings: Settings, registry: Registry, user: str | None, password: str | None, status: int
) -> None:
    with running_gateway(gw_settings, registry) as gw, _client(gw, user, password) as http:
        response = http.post("/ingest", content=_doc(SO2))
        raw = read_topic(gw_settings, "readings.raw", 0, settle_s=0.5)
    assert response.status_code == status
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert raw == []


def test_json_accepted_partly_and_fully_rejected(gw_settings: Settings, registry: Registry) -> None:
    bad = {**NO2, "value": "abc"}
    with running_gateway(gw_settings, registry) as gw, _client(gw) as http:
        ok = http.post("/ingest", content=_doc(SO2, NO2))
        partly = http.post("/ingest", content=_doc({**SO2, "measured_at": "20261124100000"}, bad))
        none = http.post("/ingest", content=b"{not json")
        raw = read_topic(gw_settings, "readings.raw", 3)
        rejected = read_topic(gw_settings, "readings.rejected", 2)

    assert ok.status_code == 202
    assert ok.json()["accepted"] == 2 and ok.json()["rejected"] == 0
    assert partly.status_code == 202
    assert partly.json()["rejections"] == [
        {
            "reason": "bad_number",
            "line": 2,
            "field": "value",
            "message": partly.json()["rejections"][0]["message"],
        }
    ]
    assert none.status_code == 400
    assert [r["reason"] for r in none.json()["rejections"]] == ["bad_json"]

    origin = ok.json()["origin"]
    assert origin.startswith("json:")
    got = sorted((m.value for m in raw), key=lambda v: (v["measured_at"], v["parameter"]))

    def archived(origin: str) -> str:  # each body's archive file, carried by its readings
        return f"2026-11-24/HD-KK-01/http-{origin.replace(':', '-')}.json"

    at = archived(origin)
    assert got == [
        reading(
            "HD-KK-01",
            "SO2",
            12.5,
            "µg/Nm3",
            partly.json()["origin"],
            channel="http",
            measured_at="2026-11-24T03:00:00Z",
            archive_path=archived(partly.json()["origin"]),
        ),
        reading(
            "HD-KK-01", "NO2", 41.0, "µg/Nm3", origin, channel="http", status="01", archive_path=at
        ),
        reading("HD-KK-01", "SO2", 12.5, "µg/Nm3", origin, channel="http", archive_path=at),
    ]
    assert sorted((m.value["reason"], m.key) for m in rejected) == [
        ("bad_json", "HD-KK-01"),  # the sender is known even when the body names no one
        ("bad_number", "HD-KK-01"),
    ]
    day = gw_settings.data_dir / "archive" / "2026-11-24" / "HD-KK-01"
    assert sorted(p.read_bytes() for p in day.iterdir()) == sorted(
        [_doc(SO2, NO2), _doc({**SO2, "measured_at": "20261124100000"}, bad), b"{not json"]
    )


def test_sender_mismatch_is_forbidden_and_counted(
    gw_settings: Settings, registry: Registry
) -> None:
    body = _doc(SO2, source_id="HD-KK-01")
    with running_gateway(gw_settings, registry) as gw, _client(gw, "HD-KK-02") as http:
        response = http.post("/ingest", content=body)
        file_response = http.post(
            f"/ingest/file/{AIR}", content=(CORPUS / "valid_air.txt").read_bytes()
        )
        rejected = read_topic(gw_settings, "readings.rejected", 2)
        raw = read_topic(gw_settings, "readings.raw", 0, settle_s=0.5)
        metrics = http.get("/metrics")
        counted = gw.counter("quantrac_rejections_total", channel="http", reason="sender_mismatch")

    assert response.status_code == 403 and file_response.status_code == 403
    assert [r["reason"] for r in response.json()["rejections"]] == ["sender_mismatch"]
    assert raw == []
    assert sorted((m.key, m.value["reason"], m.value["field"]) for m in rejected) == [
        ("HD-KK-02", "sender_mismatch", "name"),
        ("HD-KK-02", "sender_mismatch", "source_id"),
    ]
    assert {m.original for m in rejected if m.value["field"] == "source_id"} == {body}
    assert counted == 2
    assert 'quantrac_rejections_total{channel="http",reason="sender_mismatch"} 2.0' in metrics.text


def test_file_endpoint_health_and_size_limit(gw_settings: Settings, registry: Registry) -> None:
    data = (CORPUS / "valid_air.txt").read_bytes()
    with running_gateway(gw_settings, registry) as gw, _client(gw) as http:
        health = httpx.get(f"{gw.http_url}/healthz", timeout=5)
        accepted = http.post(f"/ingest/file/{AIR}", content=data)
        too_large = http.post(f"/ingest/file/{AIR}", content=b" " * (MAX_FILE_BYTES + 1))
        raw = read_topic(gw_settings, "readings.raw", 2)
        rejected = read_topic(gw_settings, "readings.rejected", 1)

    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert accepted.status_code == 202 and accepted.json()["accepted"] == 2
    assert sorted(m.value["parameter"] for m in raw) == ["PM2.5", "SO2"]
    assert {m.value["channel"] for m in raw} == {"http"}
    assert too_large.status_code == 413
    (dead,) = rejected
    assert (dead.value["reason"], dead.key) == ("file_too_large", "HD-KK-01")

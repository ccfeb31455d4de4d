"""TLS on the gateway's doors, with a certificate made at test time (tls_support.py): FTPS
(explicit, AUTH TLS) offered and required, HTTPS ingest, and the simulator delivering over FTPS.

Every client verifies the gateway's certificate against the generated one (host 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import ssl
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Literal

import httpx
import pytest

from core.settings import Settings
from stations.ftp_delivery import DeliveryKnobs, simulate
from stations.gateway import utc_now
from stations.registry import Registry
from tests.integration.gateway_support import (
    AIR,
    CORPUS,
    RunningGateway,
    gw_settings,
    read_topic,
    registry,
    running_gateway,
)
from tests.integration.test_gateway_ftp import _sim_expectation
from tests.integration.tls_support import TlsFiles, tls_files

pytestmark = pytest.mark.integration
__all__ = ["gw_settings", "registry", "tls_files"]  # fixtures used by name

VALID = (CORPUS / "valid_air.txt").read_bytes()
ACCEPTED = "226 Transfer complete: 2 readings accepted, 0 lines rejected."


def _tls(
    settings: Settings, tls: TlsFiles, ftp: Literal["off", "explicit", "required"]
) -> Settings:
    return Settings(
        **{
            **settings.model_dump(),
            "tls_cert_file": tls.cert,
            "tls_key_file": tls.key,
            "gateway_ftp_tls": ftp,
        }
    )


def _ftps(gw: RunningGateway, tls: TlsFiles, user: str = "HD-KK-01") -> ftplib.FTP_TLS:
    ftp = ftplib.FTP_TLS(context=tls.client_context())
    ftp.connect("127.0.0.1", gw.ftp_port, timeout=15)
    ftp.login(user, gw.password(user))  # AUTH TLS, then USER/PASS inside the tunnel
    ftp.prot_p()
    return ftp


def _refusals(gw: RunningGateway, reason: str, at_least: float = 1, wait_s: float = 5) -> float:
    """The refusal counter once it reached ``at_least`` (the FTP thread counts it)."""
    deadline = time.monotonic() + wait_s
    while True:
        value = gw.counter("quantrac_tls_refusals_total", channel="ftp", reason=reason)
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_ftps_upload_is_verified_encrypted_and_accepted(
    gw_settings: Settings, registry: Registry, tls_files: TlsFiles
) -> None:
    settings = _tls(gw_settings, tls_files, "explicit")
    with running_gateway(settings, registry) as gw:
        ftp = _ftps(gw, tls_files)
        try:
            assert isinstance(ftp.sock, ssl.SSLSocket)
            control_tls = ftp.sock.version()
            reply = ftp.storbinary(f"STOR {AIR}", io.BytesIO(VALID))
        finally:
            ftp.close()
        # explicit: a station without TLS still delivers on the same port
        plain = ftplib.FTP()
        plain.connect("127.0.0.1", gw.ftp_port, timeout=15)
        plain.login("HD-KK-01", gw.password("HD-KK-01"))
        plain_reply = plain.storbinary("STOR HD_TTQT_KHI001_20261124100600.txt", io.BytesIO(VALID))
        plain.close()
        # a client that does not trust the certificate (the system CAs only) stops at the
        # handshake, and the gateway counts it
        untrusting = ftplib.FTP_TLS(context=ssl.create_default_context())
        untrusting.connect("127.0.0.1", gw.ftp_port, timeout=15)
        with pytest.raises(ssl.SSLCertVerificationError):
            untrusting.auth()
        untrusting.close()
        failed = _refusals(gw, "handshake_failed")
        raw = read_topic(gw_settings, "readings.raw", 4)

    assert control_tls in {"TLSv1.2", "TLSv1.3"}
    assert reply == plain_reply == ACCEPTED
    assert sorted(m.value["parameter"] for m in raw) == ["PM2.5", "PM2.5", "SO2", "SO2"]
    assert {(m.key, m.value["channel"]) for m in raw} == {("HD-KK-01", "ftp")}
    assert failed == 1


def test_ftps_required_refuses_plain_logins_and_data(
    gw_settings: Settings, registry: Registry, tls_files: TlsFiles
) -> None:
    settings = _tls(gw_settings, tls_files, "required")
    with running_gateway(settings, registry) as gw:
        plain = ftplib.FTP()
        plain.connect("127.0.0.1", gw.ftp_port, timeout=15)
        with pytest.raises(ftplib.error_perm) as login_refused:
            plain.login("HD-KK-01", gw.password("HD-KK-01"))
        plain.close()
        # TLS on the control channel but a clear data channel (PROT C): no transfer
        clear_data = ftplib.FTP_TLS(context=tls_files.client_context())
        clear_data.connect("127.0.0.1", gw.ftp_port, timeout=15)
        clear_data.login("HD-KK-01", gw.password("HD-KK-01"))
        with pytest.raises(ftplib.error_perm) as data_refused:
            clear_data.storbinary(f"STOR {AIR}", io.BytesIO(VALID))
        clear_data.close()
        ftps = _ftps(gw, tls_files)
        reply = ftps.storbinary(f"STOR {AIR}", io.BytesIO(VALID))
        ftps.quit()
        plain_login = _refusals(gw, "plain_login")
        plain_data = _refusals(gw, "plain_data")
        raw = read_topic(gw_settings, "readings.raw", 2)

    assert str(login_refused.value) == "550 SSL/TLS required on the control channel."
    assert str(data_refused.value) == "550 SSL/TLS required on the data channel."
    assert (plain_login, plain_data) == (1, 1)
    assert reply == ACCEPTED
    assert len(raw) == 2  # only the FTPS upload's readings


def test_http_ingest_over_https(
    gw_settings: Settings, registry: Registry, tls_files: TlsFiles
) -> None:
    settings = _tls(gw_settings, tls_files, "off")
    with running_gateway(settings, registry) as gw:
        base = f"https://127.0.0.1:{gw.gateway.http_port}"
        auth = ("HD-KK-01", gw.password("HD-KK-01"))
        with httpx.Client(base_url=base, verify=tls_files.client_context(), timeout=15) as http:
            health = http.get("/healthz")
            accepted = http.post(f"/ingest/file/{AIR}", content=VALID, auth=auth)
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on the HTTPS port
            httpx.post(gw.http_url + f"/ingest/file/{AIR}", content=VALID, auth=auth, timeout=5)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{base}/healthz", verify=ssl.create_default_context(), timeout=5)
        raw = read_topic(gw_settings, "readings.raw", 2)

    assert health.status_code == 200
    assert accepted.status_code == 202 and accepted.json()["accepted"] == 2
    assert {m.value["channel"] for m in raw} == {"http"} and len(raw) == 2


def test_simulator_delivers_over_ftps_when_the_gateway_requires_it(
    gw_settings: Settings, registry: Registry, tls_files: TlsFiles
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    knobs = DeliveryKnobs.perfect()
    series, due = _sim_expectation(registry, now, knobs)
    settings = _tls(gw_settings, tls_files, "required")
    with running_gateway(settings, registry, clock=utc_now) as gw:
        sim_settings = settings.model_copy(update={"gateway_ftp_port": gw.ftp_port})
        stats = asyncio.run(
            simulate(
                sim_settings,
                via="ftp",
                speed=0,
                backfill_hours=1,
                seed=3,
                registry=registry,
                series=series,
                knobs=knobs,
                until_caught_up=True,
                now=lambda: now,
            )
        )
        raw = read_topic(gw_settings, "readings.raw", stats.readings)
        refused = gw.counter("quantrac_tls_refusals_total", channel="ftp", reason="plain_login")

    assert (stats.files, stats.accepted, stats.retries) == (len(due), len(due), 0)
    expected = Counter((r.source_id, r.parameter, r.value) for f in due for r in f.readings)
    assert Counter((m.key, m.value["parameter"], m.value["value"]) for m in raw) == expected
    assert refused == 0  # every session logged in over TLS

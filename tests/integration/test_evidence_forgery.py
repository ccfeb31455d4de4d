"""Evidence cannot be forged through the gateway (issue 16): a station's upload named like another
station's file never reaches that station's evidence package.

Station A (HD-KK-01) delivers two files: one over FTP (archived under A's folder), one the way
the simulator's Kafka path does (never archived). Their readings go through the worker's own
parts (``decode``, :class:`~streams.validate.Validator`, ``storage.rows``, the batch writer) into
a real PostgreSQL, beside a violation of A. Then station B (HD-NT-03) uploads forged bodies under
both of A's file names, over FTP and HTTP, through the real gateway on the real broker: they are
refused (sender mismatch), kept in the quarantine, dead-lettered to B, and A's evidence package
is byte for byte what it was. Before the fix the package took "the" archived file by base name
anywhere in the archive, so B's copy of the never-archived file became A's original.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from core.records import Channel, QcReading, RawReading, Rejection
from core.settings import Settings
from reports.common import ReportContext
from reports.i18n import Lang
from reports.model import ReportKind
from reports.service import Format, ReportRequest, write_report
from stations.circular10 import parse_file
from stations.registry import Registry
from storage import rows
from storage.migrate import migrate
from storage.writer import READINGS, REJECTIONS, BatchWriter, Row, TableSpec
from streams.validate import Validator
from tests.integration.gateway_support import (
    AIR,
    CORPUS,
    RECEIVED,
    RunningGateway,
    gw_settings,
    read_topic,
    registry,
    running_gateway,
)
from thresholds.catalogue import load_catalogue
from thresholds.qc import SeriesState, load_qc_rules

pytestmark = pytest.mark.integration
__all__ = ["gw_settings", "registry"]  # fixtures used by name

A, B = "HD-KK-01", "HD-NT-03"
# A's second file, 10:10 local: delivered straight to Kafka (the simulator's path), not archived
SIM_FILE = "HD_TTQT_KHI001_20261124101000.txt"
SIM_BODY = "SO2\t13.0\tµg/Nm3\t20261124101000\t00\r\nPM2,5\t33,0\tug/m3\t20261124101000\t00\r\n"
VID = f"{A}/PM2.5/QCVN_05_2023:PM2.5:day/20261124T030000Z"
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _write(url: str, spec: TableSpec, batch: Sequence[Row]) -> None:
    async def go() -> None:
        async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
            await BatchWriter(pool, spec, retry_max_s=1).write(batch)

    asyncio.run(go())


def _store(url: str, registry: Registry, raw: list[RawReading], dead: list[Rejection]) -> None:
    """What validate_readings and persist_rejections do with these records."""
    validator = Validator(registry, load_qc_rules(), 72 * 3600, 300)
    judged = [validator.check(r, SeriesState(), RECEIVED) for r in raw]
    readings = [q for q in judged if isinstance(q, QcReading)]
    assert len(readings) == len(raw), judged
    _write(url, READINGS, [rows.reading_row(q) for q in readings])
    _write(url, REJECTIONS, [rows.rejection_row(r) for r in dead])


def _upload(gw: RunningGateway, user: str, name: str, data: bytes) -> str:
    """One FTP upload with ``user``'s own credentials; the final reply or the refusal."""
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", gw.ftp_port, timeout=15)
    try:
        ftp.login(user, gw.password(user))
        return ftp.storbinary(f"STOR {name}", io.BytesIO(data))
    except ftplib.error_perm as exc:
        return str(exc)
    finally:
        ftp.close()


def _evidence(url: str, registry: Registry, archive: Path) -> bytes:
    ctx = ReportContext(registry, load_catalogue(), 0.75, "Asia/Ho_Chi_Minh", Lang.EN, NOW)
    buf = io.BytesIO()
    with psycopg.connect(url) as conn:
        req = ReportRequest(ReportKind.EVIDENCE, Format.ZIP, violation=VID)
        write_report(conn, ctx, req, buf, archive)
    return buf.getvalue()


def _insert_violation(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO violations (violation_id, kind, source_id, parameter, rule_id, period,"
            ' state, started_at, ended_at, last_at, value, "limit", ratio, severity,'
            " legal_basis, last_seq) VALUES (%s, 'exceedance', %s, 'PM2.5',"
            " 'QCVN_05_2023:PM2.5:day', '1h', 'closed', %s, %s, %s, 60, 45, 1.33, '1.1-1.5',"
            " 'QCVN 05:2023/BTNMT', 1)",
            (VID, A, RECEIVED.replace(minute=0), RECEIVED, RECEIVED),
        )


def test_a_forged_upload_under_a_stations_file_name_never_reaches_its_evidence(
    gw_settings: Settings, registry: Registry, database_url: str
) -> None:
    migrate(database_url)
    archive = gw_settings.data_dir / "archive"
    genuine = (CORPUS / "valid_air.txt").read_bytes()
    forged = b"SO2\t999.0\tug/m3\t20261124100500\t00\r\nPM2,5\t999,0\tug/m3\t20261124100500\t00\r\n"

    with running_gateway(gw_settings, registry) as gw:
        # A's own upload: archived, its readings carry the path
        assert _upload(gw, A, AIR, genuine).startswith("226")
        raw = read_topic(gw_settings, "readings.raw", 2)
        sim = parse_file(
            SIM_FILE,
            SIM_BODY.encode(),
            registry,
            received_at=RECEIVED,
            channel=Channel.SIMULATOR,
            future_tolerance_s=300,
        )
        assert not sim.rejections and all(r.archive_path is None for r in sim.readings)
        readings = [RawReading.from_data(m.value) for m in raw] + sim.readings
        assert {r.archive_path for r in readings} == {f"2026-11-24/{A}/{AIR}", None}
        _store(database_url, registry, readings, [])
        _insert_violation(database_url)
        before = _evidence(database_url, registry, archive)

        # B forges both of A's file names, over FTP and over HTTP
        replies = [_upload(gw, B, name, forged) for name in (AIR, SIM_FILE)]
        auth = (B, gw.password(B))
        with httpx.Client(base_url=gw.http_url, auth=auth, timeout=15) as http:
            statuses = [http.post(f"/ingest/file/{SIM_FILE}", content=forged + b"\r\n")]
            statuses += [http.post(f"/ingest/file/{AIR}", content=forged + b" ")]
        dead = read_topic(gw_settings, "readings.rejected", 4)
        rejections = [Rejection.from_data(m.value) for m in dead]
        _store(database_url, registry, [], rejections)
        after = _evidence(database_url, registry, archive)

    assert all(r.startswith("553 Rejected: sender_mismatch") for r in replies), replies
    assert [s.status_code for s in statuses] == [403, 403]
    assert {(r.reason, r.source_id, r.archive_path) for r in rejections} == {
        ("sender_mismatch", B, None)
    }
    assert len(rejections) == 4
    # the forged bodies sit in the quarantine, in B's folder; the archive has A's file only
    quarantined = sorted(p.name for p in (gw_settings.data_dir / "quarantine").rglob("*.txt"))
    assert quarantined == sorted([AIR, f"{AIR[:-4]}.1.txt", SIM_FILE, f"{SIM_FILE[:-4]}.1.txt"])
    assert [p.relative_to(archive).as_posix() for p in archive.rglob("*.txt")] == [
        f"2026-11-24/{A}/{AIR}"
    ]

    assert after == before  # byte for byte: the ZIP, its manifest, every original
    zf = zipfile.ZipFile(io.BytesIO(after))
    assert zf.read(f"originals/archive/2026-11-24/{AIR}") == genuine
    index = zf.read("originals/index.csv").decode("utf-8-sig").splitlines()
    assert index[1:] == [
        f"{AIR},2026-11-24/{A}/{AIR},archive,originals/archive/2026-11-24/{AIR}",
        f"{SIM_FILE},,not included: not archived (no archive path stored),",
    ]
    assert not any(forged in zf.read(n) for n in zf.namelist())

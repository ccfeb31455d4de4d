"""Pure parts of the gateway: judging, replies, credentials, archive layout, accounts."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.errors import RejectReason
from core.records import Channel, Rejection
from stations.accounts import load_or_create
from stations.archive import UNKNOWN, Archive, archive_folder, safe_name
from stations.circular10 import EXCERPT_BYTES, ParseResult
from stations.ftp_server import refuses_name, reply_for, upload_name
from stations.gateway import MAX_EVIDENCE_BYTES, Receipt, judge_file, judge_json
from stations.http_ingest import basic_credentials, status_for
from stations.mqtt_ingest import topic_source
from stations.registry import Registry, load_registry

RECEIVED = datetime(2026, 11, 24, 3, 10, tzinfo=UTC)
AIR = "HD_TTQT_KHI001_20261124100500.txt"  # HD-KK-01
BODY = "SO2\t12.5\tµg/Nm3\t20261124100500\t00\r\n".encode()
R = RejectReason


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


def _judge(
    registry: Registry, account: str | None, name: str = AIR, data: bytes = BODY
) -> ParseResult:
    return judge_file(
        name,
        data,
        registry,
        account=account,
        channel=Channel.FTP,
        received_at=RECEIVED,
        future_tolerance_s=300,
    )


@pytest.mark.parametrize(
    ("account", "reasons", "readings"),
    [
        ("HD-KK-01", [], 1),  # its own file
        (None, [], 1),  # no authenticated sender (nothing to compare)
        ("HD-KK-02", [R.SENDER_MISMATCH], 0),  # another air station
        ("HD-NT-03", [R.SENDER_MISMATCH], 0),  # an outfall sending as an air station
    ],
)
def test_sender_must_own_the_file_identity(
    registry: Registry, account: str | None, reasons: list[RejectReason], readings: int
) -> None:
    result = _judge(registry, account)
    assert [r.reason for r in result.rejections] == reasons
    assert len(result.readings) == readings
    if reasons:
        (dead,) = result.rejections
        assert dead.source_id == account and dead.line is None
        assert base64.b64decode(dead.original_b64) == BODY


def test_unidentified_rejections_are_the_senders(registry: Registry) -> None:
    result = _judge(registry, "HD-KK-01", name="HD_XX_YY_20261124100500.txt")
    assert [(r.reason, r.source_id) for r in result.rejections] == [(R.UNKNOWN_SOURCE, "HD-KK-01")]


def test_large_whole_file_evidence_is_bounded(registry: Registry) -> None:
    data = b"\x00" * (MAX_EVIDENCE_BYTES + 10)
    (dead,) = _judge(registry, "HD-KK-01", data=data).rejections
    assert dead.reason == R.BINARY_CONTENT
    assert base64.b64decode(dead.original_b64) == data[:EXCERPT_BYTES]
    assert "archived" in dead.message


@pytest.mark.parametrize(
    ("account", "source_id", "reasons"),
    [("HD-KK-01", "HD-KK-01", []), ("HD-KK-02", "HD-KK-01", [R.SENDER_MISMATCH])],
)
def test_json_sender(
    registry: Registry, account: str, source_id: str, reasons: list[RejectReason]
) -> None:
    doc = {
        "source_id": source_id,
        "readings": [
            {
                "parameter": "SO2",
                "value": 1,
                "unit": "µg/Nm3",
                "measured_at": "20261124100500",
                "status": "00",
            }
        ],
    }
    result = judge_json(
        json.dumps(doc).encode(),
        registry,
        account=account,
        channel=Channel.HTTP,
        received_at=RECEIVED,
        future_tolerance_s=300,
    )
    assert [r.reason for r in result.rejections] == reasons


def _rej(reason: RejectReason, line: int | None = None) -> Rejection:
    return Rejection(
        reason=reason.value,
        message="m",
        channel="ftp",
        received_at=RECEIVED,
        original_b64="",
        line=line,
    )


@pytest.mark.parametrize(
    ("accepted", "rejections", "ftp", "http"),
    [
        (2, [], "226 Transfer complete: 2 readings accepted, 0 lines rejected.", 202),
        (
            1,
            [_rej(R.BAD_NUMBER, 2)],
            "226 Transfer complete: 1 readings accepted, 1 lines rejected.",
            202,
        ),
        (0, [_rej(R.SENDER_MISMATCH)], "553 Rejected: sender_mismatch: m", 403),
        (0, [_rej(R.FILE_TOO_LARGE)], "553 Rejected: file_too_large: m", 413),
        (
            0,
            [_rej(R.BAD_NUMBER, 1), _rej(R.NOT_FINITE, 2)],
            "551 Rejected: bad_number: m (+1 more)",
            400,
        ),
    ],
)
def test_replies(accepted: int, rejections: list[Rejection], ftp: str, http: int) -> None:
    receipt = Receipt("HD-KK-01", AIR, Path("a"), accepted, rejections)
    assert reply_for(receipt) == ftp
    assert status_for(receipt) == http


@pytest.mark.parametrize(
    ("arg", "refused"),
    [
        (AIR, False),
        ("/" + AIR, False),  # the account's root
        ("x.csv", False),  # a bad name, but a name: taken, then dead-lettered with its bytes
        ("../" + AIR, True),
        ("/etc/" + AIR, True),
        (".htaccess", True),
        ("C:" + AIR, True),
        ("ệ" * 200, True),  # over 255 bytes: cannot be a file name
    ],
)
def test_names_refused_before_the_transfer(arg: str, refused: bool) -> None:
    assert refuses_name(upload_name(arg)) is refused


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("Bearer x", None),
        ("Basic !!!", None),
        ("Basic " + base64.b64encode(b"nocolon").decode(), None),
        ("Basic " + base64.b64encode(b"HD-KK-01:p:w").decode(), ("HD-KK-01", "p:w")),
        ("basic " + base64.b64encode(b"a:").decode(), ("a", "")),
    ],
)
def test_basic_credentials(header: str | None, expected: tuple[str, str] | None) -> None:
    assert basic_credentials(header) == expected


@pytest.mark.parametrize(
    ("topic", "source"),
    [
        ("quantrac/HD-KK-01/readings", "HD-KK-01"),
        ("quantrac//readings", None),
        ("quantrac/HD-KK-01/status", None),
        ("other/HD-KK-01/readings", None),
        ("quantrac/a/b/readings", None),
    ],
)
def test_topic_source(topic: str, source: str | None) -> None:
    assert topic_source(topic, "quantrac") == source


# --- archive ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        (AIR, AIR),
        ("../../etc/passwd", "_._.._etc_passwd"),
        (".htaccess", "_htaccess"),
        ("a\x00b c.txt", "a_b_c.txt"),
        ("", "_empty"),
    ],
)
def test_safe_name(name: str, safe: str) -> None:
    assert safe_name(name) == safe


def test_archive_folder_is_the_local_date() -> None:
    late_utc = datetime(2026, 11, 24, 18, 30, tzinfo=UTC)  # 01:30 on the 25th in Hải Dương
    assert archive_folder(late_utc, "HD-KK-01") == Path("2026-11-25/HD-KK-01")
    assert archive_folder(late_utc, None) == Path(f"2026-11-25/{UNKNOWN}")
    assert archive_folder(late_utc, "../x") == Path(f"2026-11-25/{UNKNOWN}")


def test_archive_never_overwrites(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    first = archive.store(AIR, b"one", received_at=RECEIVED, source_id="HD-KK-01")
    again = archive.store(AIR, b"one", received_at=RECEIVED, source_id="HD-KK-01")
    other = archive.store(AIR, b"two", received_at=RECEIVED, source_id="HD-KK-01")
    third = archive.store(AIR, b"three", received_at=RECEIVED, source_id="HD-KK-01")
    assert first == again == Path("2026-11-24/HD-KK-01") / AIR
    assert other.name == AIR.replace(".txt", ".1.txt")
    assert third.name == AIR.replace(".txt", ".2.txt")
    assert [(tmp_path / p).read_bytes() for p in (first, other, third)] == [
        b"one",
        b"two",
        b"three",
    ]
    assert sorted(p.name for p in (tmp_path / first).parent.iterdir()) == sorted(
        [first.name, other.name, third.name]
    )  # no temporary files left


def test_hostile_name_stays_in_its_folder(tmp_path: Path) -> None:
    path = Archive(tmp_path).store("../../../x", b"z", received_at=RECEIVED, source_id=None)
    assert (tmp_path / path).resolve().parent == (tmp_path / "2026-11-24" / UNKNOWN).resolve()


# --- accounts -----------------------------------------------------------------------------------


def test_accounts_created_once_then_extended(tmp_path: Path) -> None:
    path = tmp_path / "ftp_users.json"
    accounts, created = load_or_create(path, ["HD-KK-01", "HD-KK-02"])
    assert created == ["HD-KK-01", "HD-KK-02"]
    assert path.stat().st_mode & 0o777 == 0o600
    password = accounts.password("HD-KK-01")
    again, created_again = load_or_create(path, ["HD-KK-01", "HD-KK-02", "HD-KK-03"])
    assert created_again == ["HD-KK-03"]
    assert again.password("HD-KK-01") == password  # never changed
    assert again.check("HD-KK-01", password)
    assert not again.check("HD-KK-01", password + "x")
    assert not again.check("HD-XX-99", password)
    assert len({again.password(i) for i in again.ids()}) == 3

"""Forwarding archived originals to downstream receivers (issue 20), against real receivers on
127.0.0.1 (pyftpdlib, http.server) and the real PostgreSQL ledger.

- an FTP receiver stopped for 60 s mid-stream: every file arrives exactly once (one rename
  into its final name), byte-identical, in archive order per source, and the backlog drains;
- the forwarder process SIGKILLed mid-stream and started again: still exactly once; a file the
  receiver already holds (a crash after the rename) is not uploaded again;
- an HTTP receiver that fails at first and refuses one file: retried, one copy per file, the
  refused file set aside without blocking its source, queued again on `retry`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client import CollectorRegistry

from core.metrics import Metrics
from core.settings import Settings
from stations.archive import LOCAL_TZ, Archive
from stations.forward_config import Destination
from storage import forward_ledger as ledger
from storage.migrate import migrate
from streams.embedded import free_port
from streams.runtime import ROOT, QuantracProcess, child_env
from tests.integration.forward_support import (
    FTP_PASSWORD,
    FTP_USER,
    ForwarderThread,
    FtpReceiver,
    HttpReceiver,
    archive_file,
    circular10_file,
    wait_until,
)

# source id → station code in its Circular 10 file names
SOURCES = {"HD-NT-01": "KHI01", "HD-NT-02": "KHI02", "HD-KK-03": "NUOC03"}
PATTERN = "{province}/{facility}/{station}/{yyyy}/{mm}/{dd}/{name}"
OUTAGE_S = 60


def ftp_destination(port: int, **kw: object) -> Destination:
    base: dict[str, object] = {
        "name": "national",
        "kind": "ftp",
        "url": f"ftp://127.0.0.1:{port}/incoming",
        "username": FTP_USER,
        "password": FTP_PASSWORD,
        "path": PATTERN,
        "retry_min_s": 0.2,
        "retry_max_s": 3.0,
        "timeout_s": 5.0,
    }
    return Destination(**(base | kw))  # type: ignore[arg-type]


def queue_counts(database_url: str, destination: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT state, count(*) FROM forward_queue WHERE destination = %s GROUP BY state",
            (destination,),
        ).fetchall()
    return {state: n for state, n in rows}


def expected_remote(archive_path: str) -> str:
    day, _, name = archive_path.split("/")
    _, facility, station, _ = name.split("_")
    return f"incoming/HD/{facility}/{station}/{day[:4]}/{day[5:7]}/{day[8:10]}/{name}"


def check_exactly_once(
    receiver: FtpReceiver, archive_root: Path, written: dict[str, list[str]]
) -> None:
    renames = receiver.events.renames()
    everything = [p for paths in written.values() for p in paths]
    # exactly once: one rename into each final name, none into anything else
    assert sorted(renames) == sorted(expected_remote(p) for p in everything)
    for p in everything:
        got = (receiver.root / expected_remote(p)).read_bytes()
        assert got == (archive_root / p).read_bytes(), p
    leftovers = [p for p in receiver.root.rglob("*") if p.is_file() and p.suffix == ".part"]
    assert leftovers == []
    # in archive order per source
    for paths in written.values():
        want = [expected_remote(p) for p in paths]
        assert [r for r in renames if r in set(want)] == want


def test_ftp_receiver_down_60s_mid_stream_every_file_once_byte_identical(
    database_url: str, tmp_path: Path
) -> None:
    migrate(database_url)
    archive_root = tmp_path / "archive"
    archive = Archive(archive_root)
    receiver = FtpReceiver(tmp_path / "receiver", free_port())
    receiver.root.mkdir()
    receiver.start()
    metrics = Metrics(CollectorRegistry())
    forwarder = ForwarderThread(
        [ftp_destination(receiver.port)], archive_root, database_url, metrics
    ).start()
    written: dict[str, list[str]] = {sid: [] for sid in SOURCES}

    def write(minutes: range, pause_s: float = 0.0) -> None:
        for minute in minutes:
            for sid, station in SOURCES.items():
                written[sid].append(archive_file(archive, sid, station, minute))
            time.sleep(pause_s)

    try:
        write(range(0, 20), pause_s=0.05)
        wait_until(lambda: len(receiver.events.renames()) >= 15, 60, "15 files delivered")
        receiver.stop()  # mid-stream: deliveries are in flight
        down_at = time.monotonic()
        write(range(20, 40), pause_s=1.0)  # the gateway keeps archiving through the outage
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        during = queue_counts(database_url, "national")
        failures = metrics.forward_attempt_failures.labels("national", "transient")._value.get()
        oldest = metrics.forward_oldest_age.labels("national")._value.get()
        queued_gauge = metrics.forward_queued.labels("national")._value.get()
        receiver.start()  # the receiver is back: the backlog drains
        wait_until(
            lambda: queue_counts(database_url, "national") == {"delivered": 120},
            180,
            "the backlog to drain",
        )
    finally:
        forwarder.stop()
        receiver.stop()
    assert during.get("queued", 0) > 0 and during.get("failed", 0) == 0
    assert failures > 0 and oldest > 30 and queued_gauge == during["queued"]
    check_exactly_once(receiver, archive_root, written)
    delivered = sum(
        metrics.forward_delivered.labels("national", a)._value.get() for a in ("false", "true")
    )
    assert delivered == 120
    assert metrics.forward_queued.labels("national")._value.get() == 0


def test_forwarder_killed_mid_stream_restarts_without_duplicates(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(database_url)
    archive_root = tmp_path / "archive"
    archive = Archive(archive_root)
    receiver = FtpReceiver(tmp_path / "receiver", free_port())
    receiver.root.mkdir()
    written: dict[str, list[str]] = {sid: [] for sid in SOURCES}
    for minute in range(0, 60):
        for sid, station in SOURCES.items():
            written[sid].append(archive_file(archive, sid, station, minute))
    # A crash after the rename but before the ledger recorded it: the receiver already holds
    # the first file of HD-NT-01, identical; the forwarder must not upload it again.
    first = written["HD-NT-01"][0]
    held = receiver.root / expected_remote(first)
    held.parent.mkdir(parents=True)
    held.write_bytes((archive_root / first).read_bytes())
    receiver.events.renamed_to.append(expected_remote(first))  # it arrived (once) before
    receiver.start()
    monkeypatch.setenv("FWD_TEST_FTP_PASSWORD", FTP_PASSWORD)
    config = tmp_path / "destinations.yaml"
    config.write_text(
        "destinations:\n"
        "  - name: national\n"
        "    kind: ftp\n"
        f"    url: ftp://127.0.0.1:{receiver.port}/incoming\n"
        f"    username: {FTP_USER}\n"
        "    password_env: FWD_TEST_FTP_PASSWORD\n"
        f"    path: '{PATTERN}'\n"
        f"    since: {datetime.now(LOCAL_TZ).date().isoformat()}\n"
        "    retry_min_s: 0.2\n"
        "    retry_max_s: 2\n",
        encoding="utf-8",
    )
    port = free_port()
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        forward_destinations_file=config,
        forward_port=port,
        forward_poll_s=0.3,
    )
    log_path = tmp_path / "forward.log"
    proc = QuantracProcess(settings, log_path, command="forward").start()
    try:
        wait_until(lambda: len(receiver.events.renames()) >= 40, 90, "40 files delivered")
        proc.kill()  # SIGKILL mid-stream: no chance to finish the file in hand
        killed_at = len(receiver.events.renames())
        assert killed_at < 180, "the stream was over before the kill"
        proc = QuantracProcess(settings, log_path, command="forward").start()
        wait_until(
            lambda: queue_counts(database_url, "national") == {"delivered": 180},
            120,
            "every file delivered after the restart\n" + proc.log(),
        )
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        # a second forwarder on the same database refuses to start (exit 2, one line)
        second = subprocess.run(
            [sys.executable, "-m", "quantrac_cli", "forward"],
            env=child_env(settings.model_copy(update={"forward_port": free_port()})),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert second.returncode == 2, second.stderr
        assert "another quantrac forward is running" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        proc.stop()
        receiver.stop()
    check_exactly_once(receiver, archive_root, written)
    assert expected_remote(first) not in receiver.events.stores()  # never uploaded
    assert f"{expected_remote(first)}.part" not in receiver.events.stores()
    assert 'quantrac_forward_queued_files{destination="national"} 0.0' in body
    assert "Traceback" not in proc.log(None)


def test_http_receiver_failing_then_refusing_one_file(database_url: str, tmp_path: Path) -> None:
    migrate(database_url)
    archive_root = tmp_path / "archive"
    archive = Archive(archive_root)
    poison = b"TSS\t99.5\t"  # the receiver refuses the files of minute 99 (HTTP 400)
    receiver = HttpReceiver(fail_first=3, refuse=lambda body: poison in body).start()
    dest = Destination(
        name="city",
        kind="http",
        url=f"http://127.0.0.1:{receiver.port}/files",
        token="city-token-1",
        sources=("HD-NT-*",),
        retry_min_s=0.2,
        retry_max_s=1.0,
        max_refusals=2,
    )
    metrics = Metrics(CollectorRegistry())
    written: list[str] = []
    for minute in (1, 2, 99, 3, 4):  # minute 99 is refused; 3 and 4 come after it
        for sid, station in SOURCES.items():
            path = archive_file(archive, sid, station, minute)
            if sid.startswith("HD-NT-"):
                written.append(path)
    forwarder = ForwarderThread([dest], archive_root, database_url, metrics).start()
    try:
        wait_until(
            lambda: queue_counts(database_url, "city") == {"delivered": 8, "failed": 2},
            60,
            "8 delivered and the 2 refused set aside",
        )
    finally:
        forwarder.stop()
        receiver.stop()

    async def retry() -> int:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return await ledger.requeue_failed(conn, "city", datetime.now(UTC))

    assert asyncio.run(retry()) == 2  # what `quantrac forward retry city` does
    assert queue_counts(database_url, "city") == {"delivered": 8, "queued": 2}
    kept = {p.path: p for p in receiver.kept.values()}
    for path in written:
        name, body = path.split("/")[-1], (archive_root / path).read_bytes()
        if poison in body:
            assert name not in kept
            continue
        assert kept[name].body == body
        assert kept[name].authorization == "Bearer city-token-1"
        assert kept[name].source == path.split("/")[1]
    assert len(kept) == 8
    assert not any(p.source.startswith("HD-KK") for p in receiver.posts)  # not its source
    refusals = [p for p in receiver.posts if poison in p.body]
    assert len(refusals) == 4  # 2 files x max_refusals
    assert metrics.forward_attempt_failures.labels("city", "refused")._value.get() == 4
    assert metrics.forward_attempt_failures.labels("city", "transient")._value.get() == 3


def test_a_resend_after_a_crash_repeats_the_idempotency_key(
    database_url: str, tmp_path: Path
) -> None:
    """The ledger lost the delivery (a crash before it recorded it): the POST is made again with
    the same key, and the receiver keeps one copy."""
    migrate(database_url)
    archive_root = tmp_path / "archive"
    archive = Archive(archive_root)
    receiver = HttpReceiver().start()
    dest = Destination(
        name="city", kind="http", url=f"http://127.0.0.1:{receiver.port}/f", retry_min_s=0.2
    )
    path = archive_file(archive, "HD-NT-01", "KHI01", 5)
    metrics = Metrics(CollectorRegistry())

    async def deliver_twice() -> None:
        from psycopg_pool import AsyncConnectionPool

        from streams.forwarding import Forwarder

        fwd = Forwarder([dest], archive_root, database_url, metrics)
        async with AsyncConnectionPool(database_url, kwargs={"autocommit": True}) as pool:
            assert await fwd.scan_once(pool) == 1
            await fwd.deliver_pass(pool, dest)
            async with pool.connection() as conn:
                await conn.execute("UPDATE forward_queue SET state = 'queued'")
            await fwd.deliver_pass(pool, dest)
            async with pool.connection() as conn:
                states = await ledger.states(conn, fwd.clock())
        assert states[0].queued == 0 and states[0].delivered_24h == 1

    try:
        asyncio.run(deliver_twice())
    finally:
        receiver.stop()
    assert len(receiver.posts) == 2 and receiver.posts[0].key == receiver.posts[1].key
    assert len(receiver.kept) == 1
    assert receiver.posts[0].body == (archive_root / path).read_bytes()


def test_console_lists_destinations_with_backlog_and_last_error(
    database_url: str, tmp_path: Path
) -> None:
    """The Forwarding page and /api/forwarding, for operators and admins (not regulators)."""
    from console.app import create_app
    from console.auth import create_user

    migrate(database_url)
    archive = Archive(tmp_path / "archive")
    paths = [archive_file(archive, "HD-NT-01", "KHI01", m) for m in range(3)]

    async def fill() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            now = datetime.now(UTC)
            for dest in ("national", "city"):
                await ledger.enqueue(
                    conn,
                    [
                        ledger.QueuedFile(dest, p, "HD-NT-01", p.split("/")[-1], 10, "ab", now)
                        for p in paths
                    ],
                )
                await ledger.set_cursor_day(conn, dest, now.astimezone(LOCAL_TZ).date())
            heads = await ledger.heads(conn, "national")
            await ledger.mark_retry(
                conn, heads[0].id, "connect to 127.0.0.1:21: refused", now, now, give_up=False
            )
            for h in await ledger.heads(conn, "city"):
                await ledger.mark_delivered(conn, h.id, now)
            rest = await ledger.heads(conn, "city")
            await ledger.mark_retry(conn, rest[0].id, "HTTP 400 'bad file'", now, now, give_up=True)

    asyncio.run(fill())
    password = "correct horse battery"
    for name, role in (("op", "operator"), ("adm", "admin"), ("reg", "regulator")):
        create_user(database_url, name, password, role)
    app = create_app(Settings(database_url=database_url, data_dir=tmp_path))

    async def check() -> None:
        async with app.router.lifespan_context(app):
            for who, want in (("op", 200), ("adm", 200), ("reg", 403)):
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
                    api = await c.get("/api/forwarding")
                    html = await c.get("/forwarding?lang=en")
                    assert (api.status_code, html.status_code) == (want, want), who
                    if want != 200:
                        continue
                    got = {d["destination"]: d for d in api.json()["destinations"]}
                    assert (got["national"]["queued"], got["national"]["failed"]) == (3, 0)
                    assert got["national"]["last_error"] == "connect to 127.0.0.1:21: refused"
                    assert got["national"]["last_error_path"] == paths[0]
                    assert (got["city"]["queued"], got["city"]["failed"]) == (1, 1)
                    assert got["city"]["delivered_24h"] == 1
                    assert "Data forwarding" in html.text
                    assert 'data-destination="national"' in html.text
                    assert "connect to 127.0.0.1:21: refused" in html.text
                    assert html.text.count('class="fwd-failed"') == 1
                    assert 'href="/forwarding"' in html.text

    asyncio.run(check())


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantrac_cli", "forward", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_cli_check_and_its_errors(tmp_path: Path, database_url: str) -> None:
    config = tmp_path / "destinations.yaml"
    config.write_text(
        "destinations:\n"
        "  - {name: national, kind: ftp, url: 'ftp://127.0.0.1:21/in', username: hd,"
        " password_env: FWD_CLI_PW, path: '{station}/{name}'}\n",
        encoding="utf-8",
    )
    base = child_env(Settings(data_dir=tmp_path, database_url=database_url))
    base.pop("QUANTRAC_FORWARD_DESTINATIONS_FILE", None)
    base.pop("FWD_CLI_PW", None)
    ok = run_cli("check", "--file", str(config), env={**base, "FWD_CLI_PW": "pw-s3cret-99"})
    assert ok.returncode == 0, ok.stderr
    assert "national: ftp ftp://127.0.0.1:21/in as hd" in ok.stdout
    assert "pw-s3cret-99" not in ok.stdout + ok.stderr
    cases = [
        (("check",), {}, "QUANTRAC_FORWARD_DESTINATIONS_FILE is unset"),
        (("check", "--file", str(config)), {}, "environment variable FWD_CLI_PW"),
        (("check", "--file", str(tmp_path / "nope.yaml")), {}, "cannot read"),
        (("retry",), {"FWD_CLI_PW": "x"}, "retry needs the destination's name"),
        (("retry", "city", "--file", str(config)), {"FWD_CLI_PW": "x"}, "no destination 'city'"),
    ]
    for args, extra, message in cases:
        got = run_cli(*args, env={**base, **extra})
        assert got.returncode == 2, (args, got.stderr)
        assert message in got.stderr, (args, got.stderr)
        assert "Traceback" not in got.stderr
    migrate(database_url)
    status = run_cli("status", "--file", str(config), env={**base, "FWD_CLI_PW": "x"})
    assert status.returncode == 0 and "no destination has run yet" in status.stdout
    retry = run_cli("retry", "national", "--file", str(config), env={**base, "FWD_CLI_PW": "x"})
    assert retry.returncode == 0 and "national: 0 failed file(s) queued again" in retry.stdout


def test_files_the_gateway_accepted_reach_the_receiver_byte_exact(
    kafka_url: str, database_url: str, tmp_path: Path
) -> None:
    """End to end: stations upload to the real gateway (FTP, real broker), the forwarder sends
    what it archived to the receiver; a body refused whole (another source's file) is
    quarantined and never forwarded."""
    import ftplib
    import io
    import uuid

    from core.topics import ensure_topics
    from stations.registry import load_registry
    from tests.integration.gateway_support import AIR, CORPUS, STACK, running_gateway

    tag = uuid.uuid4().hex[:8]
    gw_dir = tmp_path / "gateway"
    gw_settings = Settings(
        kafka_url=kafka_url,
        data_dir=gw_dir,
        topic_prefix=f"t{tag}.",
        app_id=f"quantrac-test-{tag}",
        topic_partitions=2,
    )
    ensure_topics(gw_settings)
    migrate(database_url)
    receiver = FtpReceiver(tmp_path / "receiver", free_port())
    receiver.root.mkdir()
    receiver.start()
    uploads = {
        ("HD-KK-01", AIR): (CORPUS / "valid_air.txt").read_bytes(),
        ("HD-KK-01", "HD_TTQT_KHI001_20261124100600.txt"): (CORPUS / "bad_number.txt").read_bytes(),
        ("HD-KT-01", STACK): (CORPUS / "stack_ppm_dust.txt").read_bytes(),
    }
    stray = (CORPUS / "valid_air.txt").read_bytes()  # HD-KT-01 sending HD-KK-01's file
    dest = ftp_destination(receiver.port, path="{name}", since=date(2026, 11, 24))
    metrics = Metrics(CollectorRegistry())
    forwarder = ForwarderThread([dest], gw_dir / "archive", database_url, metrics)
    try:
        with running_gateway(gw_settings, load_registry()) as gw:
            for (account, name), body in uploads.items():
                ftp = ftplib.FTP()
                ftp.connect("127.0.0.1", gw.ftp_port, timeout=15)
                ftp.login(account, gw.password(account))
                assert ftp.storbinary(f"STOR {name}", io.BytesIO(body)).startswith("226")
                ftp.close()
            ftp = ftplib.FTP()
            ftp.connect("127.0.0.1", gw.ftp_port, timeout=15)
            ftp.login("HD-KT-01", gw.password("HD-KT-01"))
            with pytest.raises(ftplib.error_perm):
                ftp.storbinary("STOR HD_TTQT_KHI001_20261124100700.txt", io.BytesIO(stray))
            ftp.close()
        forwarder.start()
        wait_until(
            lambda: queue_counts(database_url, "national") == {"delivered": 3}, 60, "3 delivered"
        )
    finally:
        forwarder.stop()
        receiver.stop()
    got = {p.name: p.read_bytes() for p in (receiver.root / "incoming").iterdir()}
    assert got == {name: body for (_, name), body in uploads.items()}
    assert sorted(receiver.events.renames()) == sorted(f"incoming/{n}" for _, n in uploads)
    assert any((gw_dir / "quarantine").rglob("HD_TTQT_KHI001_20261124100700.txt"))


def test_a_corrected_resend_replaces_and_a_vanished_file_is_set_aside(
    database_url: str, tmp_path: Path
) -> None:
    """A different body under a name already archived (the archive keeps it as name.1.txt)
    reaches the receiver under the original name, replacing the first; an archived file that is
    gone when its turn comes is set aside (counted as missing), and its source goes on."""
    from psycopg_pool import AsyncConnectionPool

    from streams.forwarding import Forwarder

    migrate(database_url)
    archive_root = tmp_path / "archive"
    archive = Archive(archive_root)
    receiver = FtpReceiver(tmp_path / "receiver", free_port())
    receiver.root.mkdir()
    receiver.start()
    dest = ftp_destination(receiver.port, path="{name}")
    metrics = Metrics(CollectorRegistry())
    name, first = circular10_file("KHI01", 1)
    second = first.replace(b"TSS\t1.5", b"TSS\t1.7")
    now = datetime.now(UTC)
    paths: dict[str, str] = {}

    async def run() -> None:
        fwd = Forwarder([dest], archive_root, database_url, metrics)
        async with AsyncConnectionPool(database_url, kwargs={"autocommit": True}) as pool:
            archive.store(name, first, received_at=now, source_id="HD-NT-01")
            assert await fwd.scan_once(pool) == 1
            await fwd.deliver_pass(pool, dest)
            again = archive.store(name, second, received_at=now, source_id="HD-NT-01")
            assert again.name == name.replace(".txt", ".1.txt")
            paths["gone"] = archive_file(archive, "HD-NT-01", "KHI01", 2)
            paths["after"] = archive_file(archive, "HD-NT-01", "KHI01", 3)
            assert await fwd.scan_once(pool) == 3
            (archive_root / paths["gone"]).unlink()
            for _ in range(4):
                await fwd.deliver_pass(pool, dest)

    try:
        asyncio.run(run())
    finally:
        receiver.stop()
    assert (receiver.root / "incoming" / name).read_bytes() == second
    assert receiver.events.renames().count(f"incoming/{name}") == 2
    assert queue_counts(database_url, "national") == {"delivered": 3, "failed": 1}
    assert metrics.forward_attempt_failures.labels("national", "missing")._value.get() == 1
    assert (receiver.root / "incoming" / paths["after"].split("/")[-1]).exists()
    assert not (receiver.root / "incoming" / paths["gone"].split("/")[-1]).exists()

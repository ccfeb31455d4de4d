"""The production topology, run for real without containers.

A broker and the machine's own PostgreSQL server (127.0.0.1:5432, not the embedded one) are the
external services; ``quantrac gateway``, two ``quantrac worker``s and ``quantrac console`` run
as separate processes configured only from deploy/env/defaults.env + production.env (secrets
filled by ``quantrac secrets init`` in a temporary copy) plus the service URLs. Overridden, and
nothing else: the service URLs, the ports (each must be free here), the data directories, the
MQTT URL (dropped: the shipped one names the compose mosquitto with the gateway's login, which
this machine's Mosquitto does not know) and the masquerade address (127.0.0.2, a loopback
address, standing in for the host's public one). The shipped passive range is kept when free.

Checked: every process listens on 0.0.0.0 (the socket table); a passive FTP upload is told
127.0.0.2 and a port of the range; its readings reach the console API as stored averages and a
violation; Prometheus, run from deploy/prometheus/prometheus.yml with the targets rewritten to
the local ports, scrapes all four processes.
"""

from __future__ import annotations

import ftplib
import io
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
import yaml

from core.records import Channel, RawReading
from stations.accounts import accounts_path, load_or_create
from stations.circular10 import format_file
from stations.registry import load_registry
from streams.embedded import EmbeddedBroker, free_port
from tests.conftest import wait_until
from tests.integration.test_prometheus import PrometheusServer, require_tool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"  # the machine's PostgreSQL 15
MASQUERADE = "127.0.0.2"
SOURCE = "HD-NT-01"  # wastewater outfall: COD limit 148.5 mg/L (tests/integration/test_pipeline)
# COD every 5 min for two hours: about 230 mg/L (1.55 × the limit), then about 100; noise of ±60,
# as in test_pipeline, so QA/QC's spike filter keeps the step
VALUES = [[round(level + 60 * math.sin(k * 2.3), 3) for k in range(12)] for level in (230, 100)]
USER, PASSWORD = "topology-op", "a-long-operator-passphrase"


def parse_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blank lines skipped), as compose's env_file reads them."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def passive_range(shipped: str) -> tuple[int, int]:
    """The shipped range when all its ports are free here, else 10 free consecutive ports."""
    lo, hi = (int(p) for p in shipped.split("-"))
    if all(port_free(p) for p in range(lo, hi + 1)):
        return lo, hi
    for start in range(41000, 60000, 10):
        if all(port_free(p) for p in range(start, start + 10)):
            return start, start + 9
    raise AssertionError("no 10 free consecutive ports for the FTP passive range")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return f"{self.name}: " + self.log.read_text(errors="replace")[-3000:]

    def alive(self) -> bool:
        if self.popen.poll() is not None:
            raise AssertionError(f"exited {self.popen.returncode}; {self.tail()}")
        return True

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


def quantrac(env: dict[str, str], *args: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "quantrac_cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout.decode()


@dataclass
class Topology:
    env: dict[str, str]
    ports: dict[str, int]  # process name -> its HTTP (/metrics) port
    ftp_port: int
    passive: tuple[int, int]
    procs: dict[str, Proc]
    station_password: str


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    """A fresh database on the machine's server; dropped after."""
    try:
        psycopg.connect(SERVER, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL on 127.0.0.1:5432 is not running ({exc}); .ci/run starts it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"topo_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield name
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def topology(database: str, tmp_path: Path) -> Iterator[Topology]:
    env_dir = tmp_path / "env"
    shutil.copytree(DEPLOY / "env", env_dir)
    subprocess.run(
        [sys.executable, "-m", "quantrac_cli", "secrets", "init", "--env-dir", str(env_dir)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    shipped = parse_env(env_dir / "defaults.env") | parse_env(env_dir / "production.env")
    assert shipped["QUANTRAC_GATEWAY_HOST"] == shipped["QUANTRAC_CONSOLE_HOST"] == "0.0.0.0"
    assert shipped["QUANTRAC_WEB_HOST"] == "0.0.0.0"
    # the database URL keeps its generated password (trust auth here ignores it) and user
    # postgres, which exists on this server; host, port and database are this machine's
    db_url = re.sub(
        r"://[^:]+:([^@]+)@[^/]+/\w+$",
        rf"://postgres:\1@127.0.0.1:5432/{database}",
        shipped["QUANTRAC_DATABASE_URL"],
    )
    assert db_url != shipped["QUANTRAC_DATABASE_URL"] and "CHANGE-ME" not in db_url
    lo, hi = passive_range(shipped["QUANTRAC_GATEWAY_FTP_PASSIVE_PORTS"])
    ports = {"gateway": free_port(), "worker-1": free_port(), "worker-2": free_port()}
    ports["console"] = free_port()
    ftp_port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("QUANTRAC_")}
    common = base | shipped
    common.pop("QUANTRAC_MQTT_URL")
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        common |= {
            "QUANTRAC_KAFKA_URL": broker.url,
            "QUANTRAC_DATABASE_URL": db_url,
            "QUANTRAC_CONSOLE_PORT": str(ports["console"]),
            "QUANTRAC_GATEWAY_HTTP_PORT": str(ports["gateway"]),
            "QUANTRAC_GATEWAY_FTP_PORT": str(ftp_port),
            "QUANTRAC_GATEWAY_FTP_PASSIVE_PORTS": f"{lo}-{hi}",
            "QUANTRAC_GATEWAY_FTP_MASQUERADE_ADDRESS": MASQUERADE,
        }
        migrate_env = common | {"QUANTRAC_DATA_DIR": str(tmp_path / "migrate")}
        quantrac(migrate_env, "db", "migrate")
        quantrac(migrate_env, "users", "add", USER, "operator", stdin=PASSWORD.encode())
        # the gateway's ingest accounts, as its volume would hold them after its first start
        gateway_dir = tmp_path / "gateway"
        gateway_dir.mkdir()
        accounts, _ = load_or_create(accounts_path(gateway_dir), [SOURCE])
        procs: dict[str, Proc] = {}
        try:
            for name, command in (
                ("gateway", "gateway"),
                ("worker-1", "worker"),
                ("worker-2", "worker"),
                ("console", "console"),
            ):
                data = tmp_path / name
                data.mkdir(exist_ok=True)
                env = common | {"QUANTRAC_DATA_DIR": str(data)}
                if command == "worker":
                    env["QUANTRAC_WEB_PORT"] = str(ports[name])
                log = tmp_path / f"{name}.log"
                with open(log, "wb") as out:
                    popen = subprocess.Popen(
                        [sys.executable, "-m", "quantrac_cli", command],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=ROOT,
                        start_new_session=True,
                    )
                procs[name] = Proc(name, popen, log)
            for name, proc in procs.items():
                wait_until(ready(proc, ports[name]), 45, message=proc.tail)
            wait_until(lambda: procs["gateway"].alive() and listening(ftp_port), 20)
            yield Topology(common, ports, ftp_port, (lo, hi), procs, accounts.password(SOURCE))
        finally:
            for proc in procs.values():
                proc.stop()


def ready(proc: Proc, port: int) -> Callable[[], bool]:
    return lambda: proc.alive() and listening(port)


def listening(port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr.port == port
        for c in psutil.net_connections("tcp")
    )


def listen_addresses(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs the process ``pid`` listens on (TCP), from the socket table."""
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.pid == pid
    }


def cod_file(t0: datetime) -> tuple[str, bytes]:
    """VALUES of SOURCE from ``t0``, then one reading past the second hour, which closes it."""

    def reading(t: datetime, value: float) -> RawReading:
        return RawReading(
            source_id=SOURCE,
            parameter="COD",
            value=value,
            unit="mg/L",
            measured_at=t,
            status="00",
            received_at=t0,
            channel=Channel.FTP.value,
            origin="test",
        )

    readings = [
        reading(t0 + timedelta(hours=h, minutes=5 * k), value)
        for h, values in enumerate(VALUES)
        for k, value in enumerate(values)
    ]
    readings.append(reading(t0 + timedelta(hours=2), 100))
    return format_file(readings, load_registry())


def console_client(port: int) -> httpx.Client:
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    client.get("/login")
    token = client.cookies["qt_login_csrf"]
    r = client.post("/login", data={"username": USER, "password": PASSWORD, "csrf_token": token})
    assert r.status_code in (200, 303), r.text
    assert client.get("/api/me").json()["username"] == USER
    return client


def test_production_topology(topology: Topology, tmp_path: Path) -> None:
    t = topology
    # every process listens on all interfaces, at its configured ports only
    expected = {
        "gateway": {("0.0.0.0", t.ports["gateway"]), ("0.0.0.0", t.ftp_port)},
        "worker-1": {("0.0.0.0", t.ports["worker-1"])},
        "worker-2": {("0.0.0.0", t.ports["worker-2"])},
        "console": {("0.0.0.0", t.ports["console"])},
    }
    for name, proc in t.procs.items():
        got = listen_addresses(proc.popen.pid)
        assert got == expected[name], (name, got, proc.tail())

    # a passive FTP upload: told the masquerade address and a port of the configured range
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    name, body = cod_file(t0)
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", t.ftp_port, timeout=10)
    ftp.login(SOURCE, t.station_password)
    ftp.set_pasv(True)
    reply = ftp.sendcmd("PASV")
    host, port = ftplib.parse227(reply)
    assert host == MASQUERADE, reply
    assert t.passive[0] <= port <= t.passive[1], reply
    # Behind NAT the masquerade address leads back to the gateway; here it does not (the data
    # socket is bound to the control connection's 127.0.0.1), so ftplib's default of using the
    # control connection's host with the port of the reply stands in for the NAT.
    assert not ftp.trust_server_pasv_ipv4_address  # type: ignore[attr-defined]
    assert ftp.storbinary(f"STOR {name}", io.BytesIO(body)).startswith("226"), name
    ftp.quit()

    # the readings reach the console API: stored hourly averages and an open violation
    client = console_client(t.ports["console"])
    try:

        def violations() -> list[dict[str, Any]]:
            r = client.get("/api/violations")
            assert r.status_code == 200, r.text
            data = r.json()
            items = data["items"] if isinstance(data, dict) else data
            return [v for v in items if v["source_id"] == SOURCE and v["parameter"] == "COD"]

        wait_until(
            lambda: bool(violations()),
            40,
            message=lambda: "".join(p.tail() for p in t.procs.values()),
        )
        (violation,) = violations()
        assert violation["severity"] == "1.5-2", violation

        hour0 = sum(VALUES[0]) / 12
        assert violation["started_at"].startswith(t0.strftime("%Y-%m-%dT%H:%M")), violation
        assert violation["value"] == pytest.approx(hour0), violation

        def hourly() -> dict[str, float]:
            r = client.get(
                f"/api/sources/{SOURCE}/series",
                params={"parameter": "COD", "resolution": "hourly"},
            )
            assert r.status_code == 200, r.text
            return {p["at"]: p["value"] for p in r.json() if p["valid"]}

        stamps = [f"{t0 + timedelta(hours=h):%Y-%m-%dT%H:%M:%SZ}" for h in (0, 1)]
        wait_until(lambda: set(stamps) <= set(hourly()), 20, message=lambda: str(hourly()))
        averages = hourly()
        assert {s: averages[s] for s in stamps} == {
            stamps[h]: pytest.approx(sum(VALUES[h]) / 12) for h in (0, 1)
        }
    finally:
        client.close()

    # Prometheus from the shipped config, targets rewritten to the local ports
    require_tool("prometheus")
    shipped = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {c["job_name"]: c["static_configs"][0]["targets"] for c in shipped["scrape_configs"]}
    local = {
        "quantrac-worker": [f"127.0.0.1:{t.ports['worker-1']}", f"127.0.0.1:{t.ports['worker-2']}"],
        "quantrac-gateway": [f"127.0.0.1:{t.ports['gateway']}"],
        "quantrac-console": [f"127.0.0.1:{t.ports['console']}"],
    }
    assert {j: len(v) for j, v in jobs.items() if j in local} == {
        j: len(v) for j, v in local.items()
    }
    prometheus = PrometheusServer(tmp_path / "prometheus", [], "unused")
    config = yaml.safe_load(prometheus.config.read_text())  # fast rules, 1 s intervals
    config["global"] |= {k: v for k, v in shipped["global"].items() if "interval" not in k}
    config["scrape_configs"] = [
        c | {"static_configs": [{"targets": local[c["job_name"]]}]}
        for c in shipped["scrape_configs"]
        if c["job_name"] in local  # prometheus itself and alertmanager are not quantrac's
    ]
    prometheus.config.write_text(yaml.safe_dump(config))
    with prometheus:
        up = prometheus.wait_for("up == 1", "job", "instance", count=4)
        assert set(up) == {(j, i) for j, targets in local.items() for i in targets}, (
            prometheus.values("up", "job", "instance")
        )

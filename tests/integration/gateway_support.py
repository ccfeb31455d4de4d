"""Shared pieces of the gateway integration tests: a gateway in a thread, a topic reader.

The gateway runs on its own event loop in a background thread (the tests drive it with blocking
clients: ftplib, httpx, paho) on free ports, against the real embedded broker, with a fixed clock
so records can be compared exactly. No database is needed, so the settings here skip it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from kafka import KafkaConsumer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion

from core.settings import Settings
from core.topics import bootstrap_servers, ensure_topics
from stations.accounts import Accounts, accounts_path, load_or_create
from stations.gateway import Gateway, fresh_metrics
from stations.mqtt_acl import GatewayLogin, write_files
from stations.registry import Registry, load_registry
from streams.embedded import free_port, wait_for_port

# The corpus clock: received 2026-11-24 10:10 local; its lines are stamped 10:05 local.
RECEIVED = datetime(2026, 11, 24, 3, 10, tzinfo=UTC)
RECEIVED_ISO = "2026-11-24T03:10:00Z"
MEASURED_ISO = "2026-11-24T03:05:00Z"
AIR = "HD_TTQT_KHI001_20261124100500.txt"  # HD-KK-01
STACK = "HD_NDPL_KHI001_20261124100500.txt"  # HD-KT-01
OUTFALL = "HD_KCNDA_NTH001_20261124100500.txt"  # HD-NT-03
CORPUS = Path(__file__).parent.parent / "corpus" / "circular10"
MOSQUITTO_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture
def gw_settings(kafka_url: str, tmp_path: Path) -> Settings:
    """Unique topics and app id on the shared embedded broker; topics created."""
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_url=kafka_url,
        data_dir=tmp_path,
        topic_prefix=f"t{tag}.",
        app_id=f"quantrac-test-{tag}",
        topic_partitions=2,
    )
    ensure_topics(settings)
    return settings


@dataclass
class RunningGateway:
    gateway: Gateway
    settings: Settings

    @property
    def accounts(self) -> Accounts:
        assert self.gateway.accounts is not None
        return self.gateway.accounts

    @property
    def ftp_port(self) -> int:
        return self.gateway.ftp_port

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.http_port}"

    def password(self, source_id: str) -> str:
        return self.accounts.password(source_id)

    def counter(self, name: str, **labels: str) -> float:
        value = self.gateway.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


@contextmanager
def running_gateway(
    settings: Settings,
    registry: Registry,
    clock: Callable[[], datetime] = lambda: RECEIVED,
    **options: Any,
) -> Iterator[RunningGateway]:
    """Start a Gateway on free ports (fixed clock by default); stop it and check it stopped."""
    gateway = Gateway(
        settings,
        registry=registry,
        metrics=fresh_metrics(),
        clock=clock,
        host="127.0.0.1",
        ftp_port=0,
        http_port=0,
        **options,
    )
    ready = threading.Event()
    failure: list[BaseException] = []
    holder: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        holder["loop"], holder["stop"] = asyncio.get_running_loop(), stop
        try:
            await gateway.start()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            await stop.wait()
        finally:
            await gateway.stop()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30), "gateway did not start within 30 s"
    if failure:
        thread.join(10)
        raise failure[0]
    try:
        yield RunningGateway(gateway, settings)
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(30)
        assert not thread.is_alive(), "gateway did not stop within 30 s"


@dataclass(frozen=True)
class Message:
    key: str | None
    value: dict[str, Any]
    headers: dict[str, bytes]

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.value["original_b64"])


def _records(value: bytes) -> list[dict[str, Any]]:
    """A message's records without the Faust envelope; a RawBatch gives its readings."""
    decoded = json.loads(value)
    items = decoded.get("readings", [decoded])
    for item in items:
        item.pop("__faust", None)
    return items


def read_topic(
    settings: Settings,
    name: str,
    expected: int,
    *,
    timeout_s: float = 20,
    settle_s: float = 1.5,
    until: Callable[[list[Message]], bool] | None = None,
) -> list[Message]:
    """Everything on ``name`` from the beginning, one Message per record (a RawBatch's readings
    each): wait for ``expected`` records (or, with
    ``until``, until it holds for the messages read so far: a count says little when some may
    be there twice), then ``settle_s`` more to catch any extra (the tests assert exact counts)."""
    topic = settings.topic(name)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=500,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        out: list[Message] = []
        deadline = time.monotonic() + timeout_s
        settle_until: float | None = None
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                for rec in batch:
                    key = rec.key.decode() if rec.key is not None else None
                    headers = {k: v for k, v in rec.headers}
                    out += [Message(key, value, headers) for value in _records(rec.value)]
            done = until(out) if until is not None else len(out) >= expected
            if done and settle_until is None:
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() >= settle_until:
                break
        return out
    finally:
        consumer.close()


def reading(
    source_id: str,
    parameter: str,
    value: float,
    unit: str,
    origin: str,
    *,
    channel: str = "ftp",
    status: str = "00",
    measured_at: str = MEASURED_ISO,
    archive_path: str | None = None,
) -> dict[str, Any]:
    """A RawReading as it appears on ``readings.raw`` (JSON, without the Faust envelope)."""
    return {
        "source_id": source_id,
        "parameter": parameter,
        "value": value,
        "unit": unit,
        "measured_at": measured_at,
        "status": status,
        "received_at": RECEIVED_ISO,
        "channel": channel,
        "origin": origin,
        "archive_path": archive_path,
    }


# ---------------------------------------------------------------------------------------------
# a private Mosquitto with per-station credentials and the ACL `quantrac mqtt-acl` writes


@dataclass
class SecuredBroker:
    url: str  # the gateway's login
    port: int
    accounts: Accounts

    def station(self, source_id: str, password: str | None = None) -> mqtt.Client:
        """A connected MQTT 5 client logged in as ``source_id`` (its account's password)."""
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{source_id}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(source_id, password or self.accounts.password(source_id))
        return client


def connack(client: mqtt.Client, port: int) -> mqtt.ReasonCode:
    """Connect and return the broker's CONNACK reason code."""
    answer: list[mqtt.ReasonCode] = []
    got = threading.Event()

    def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: mqtt.ReasonCode, props: Any) -> None:
        answer.append(rc)
        got.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert got.wait(10), "no CONNACK"
    return answer[0]


def publish_v5(client: mqtt.Client, topic: str, payload: bytes) -> mqtt.ReasonCode:
    """Publish at QoS 1 and return the PUBACK's reason code (MQTT 5 says why it was refused)."""
    codes: dict[int, mqtt.ReasonCode] = {}
    done = threading.Condition()

    def on_publish(c: mqtt.Client, u: Any, mid: int, rc: mqtt.ReasonCode, props: Any) -> None:
        with done:
            codes[mid] = rc
            done.notify_all()

    client.on_publish = on_publish
    info = client.publish(topic, payload, qos=1)
    with done:
        assert done.wait_for(lambda: info.mid in codes, 10), "no PUBACK"
    return codes[info.mid]


def shipped_mosquitto_conf(port: int, auth_dir: Path, data_dir: Path) -> str:
    """deploy/mosquitto/mosquitto.conf with its port and container paths moved to this machine
    (each rewrite must hit exactly one line: a renamed directive fails instead of vanishing)."""
    rewrites = {
        "listener 1883": f"listener {port} 127.0.0.1",
        "password_file /mosquitto/auth/passwd": f"password_file {auth_dir / 'passwd'}",
        "acl_file /mosquitto/auth/acl": f"acl_file {auth_dir / 'acl'}",
        "persistence_location /mosquitto/data/": f"persistence_location {data_dir}/",
    }
    lines = MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines()
    for old, new in rewrites.items():
        hits = [i for i, line in enumerate(lines) if line.strip() == old]
        assert len(hits) == 1, f"{MOSQUITTO_CONF.name}: want one line {old!r}, got {len(hits)}"
        lines[hits[0]] = new
    out = "\n".join(lines) + "\n"
    assert "/mosquitto/" not in out.replace(str(auth_dir), "").replace(str(data_dir), "")
    # Started as root, Mosquitto would switch to the `mosquitto` user, who cannot enter pytest's
    # 0700 temporary directories (in the image it runs as that user and owns its directories).
    return out + "user root\n"


@pytest.fixture
def secured_broker(gw_settings: Settings, registry: Registry) -> Iterator[SecuredBroker]:
    """Mosquitto on the shipped deploy/mosquitto/mosquitto.conf (``allow_anonymous false``,
    client id = user name) with the files `quantrac mqtt-acl` writes."""
    binary = shutil.which("mosquitto")
    if binary is None:
        why = "mosquitto is not installed (Debian package mosquitto)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (CI=true: a missing service is a failure)")
        pytest.skip(why)
    data_dir = gw_settings.data_dir
    accounts, _ = load_or_create(accounts_path(data_dir), [s.id for s in registry.sources])
    gateway = GatewayLogin("quantrac-gateway", "gw-" + uuid.uuid4().hex)
    root = gw_settings.mqtt_topic_root
    pw_file, acl = write_files(data_dir / "mosquitto", registry, accounts, gateway, root)
    port = free_port()
    assert (pw_file.parent, acl.parent) == (data_dir / "mosquitto",) * 2
    store = data_dir / "mosquitto" / "store"
    store.mkdir()
    conf = data_dir / "mosquitto" / "mosquitto.conf"
    conf.write_text(shipped_mosquitto_conf(port, pw_file.parent, store), encoding="utf-8")
    with open(data_dir / "mosquitto" / "mosquitto.log", "wb") as log:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, 10)
        url = f"mqtt://{gateway.user}:{gateway.password}@127.0.0.1:{port}"
        yield SecuredBroker(url, port, accounts)
    finally:
        proc.terminate()
        proc.wait(10)

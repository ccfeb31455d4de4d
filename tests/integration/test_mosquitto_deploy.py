"""The shipped broker configuration, for real: Debian's ``mosquitto`` runs
``deploy/mosquitto/mosquitto.conf`` with the two files a real ``quantrac mqtt-acl`` run writes.

Only what cannot work outside a container is rewritten (``shipped_mosquitto_conf``): the
listener goes to a free loopback port and the ``/mosquitto/...`` paths to a temporary directory.
The gateway's user name is the one in ``deploy/env/production.env``. In CI a missing
``mosquitto`` fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from stations.accounts import Accounts, accounts_path
from streams.embedded import free_port, wait_for_port
from tests.conftest import wait_until
from tests.integration.gateway_support import connack, publish_v5, shipped_mosquitto_conf

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = ROOT / "deploy" / "env" / "production.env"
NOT_AUTHORIZED = 135


def gateway_user() -> str:
    """The gateway's MQTT user as deploy/env/production.env names it."""
    for line in PRODUCTION_ENV.read_text(encoding="utf-8").splitlines():
        if line.startswith("QUANTRAC_MQTT_URL="):
            user = urlsplit(line.partition("=")[2]).username
            assert user, "QUANTRAC_MQTT_URL in production.env names no user"
            return user
    raise AssertionError("deploy/env/production.env sets no QUANTRAC_MQTT_URL")


@dataclass
class Broker:
    port: int
    data_dir: Path  # QUANTRAC_DATA_DIR: the accounts file
    auth_dir: Path  # where mqtt-acl writes passwd and acl
    gateway: tuple[str, str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path

    def accounts(self) -> Accounts:
        return Accounts(json.loads(accounts_path(self.data_dir).read_text(encoding="utf-8")))

    def client(self, user: str | None, password: str | None = None) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{user or 'anon'}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        if user is not None:
            client.username_pw_set(user, password)
        return client

    def station(self, source_id: str) -> mqtt.Client:
        return self.client(source_id, self.accounts().password(source_id))

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def mqtt_acl(env: dict[str, str], out: Path) -> None:
    """``quantrac mqtt-acl --out OUT --readable``, the command the deploy files run."""
    result = subprocess.run(
        [sys.executable, "-m", "quantrac_cli", "mqtt-acl", "--out", str(out), "--readable"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(out / "passwd"), str(out / "acl")]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    binary = shutil.which("mosquitto")
    if binary is None:
        why = "mosquitto is not installed (apt-get install -y mosquitto)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (CI=true: a missing service is a failure)")
        pytest.skip(why)
    port = free_port()
    data_dir, auth_dir, store = tmp_path / "data", tmp_path / "auth", tmp_path / "store"
    store.mkdir()
    gateway = (gateway_user(), "gw-" + uuid.uuid4().hex)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTRAC_")}
    env |= {
        "QUANTRAC_DATA_DIR": str(data_dir),
        "QUANTRAC_MQTT_URL": f"mqtt://{gateway[0]}:{gateway[1]}@127.0.0.1:{port}",
    }
    mqtt_acl(env, auth_dir)
    assert (auth_dir / "passwd").stat().st_mode & 0o777 == 0o644  # --readable
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(shipped_mosquitto_conf(port, auth_dir, store), encoding="utf-8")
    log = tmp_path / "mosquitto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, 10)
        yield Broker(port, data_dir, auth_dir, gateway, env, proc, log)
    finally:
        proc.terminate()
        proc.wait(10)


class Collector:
    """A connected client that records every message it is delivered."""

    def __init__(self, client: mqtt.Client, port: int, topic: str) -> None:
        self.client = client
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()

        def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
            with self.lock:
                self.messages.append((msg.topic, bytes(msg.payload)))

        def on_subscribe(c: mqtt.Client, u: Any, mid: int, codes: Any, props: Any) -> None:
            subscribed.set()

        client.on_message = on_message
        client.on_subscribe = on_subscribe
        assert not connack(client, port).is_failure
        client.subscribe(topic, qos=1)
        assert subscribed.wait(10), "no SUBACK"

    def got(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.messages)


def _close(*clients: mqtt.Client) -> None:
    for client in clients:
        client.disconnect()
        client.loop_stop()


def test_a_station_publishes_under_its_own_topic_only(broker: Broker) -> None:
    gateway = Collector(broker.client(*broker.gateway), broker.port, "quantrac/+/readings")
    # another station listening to everything: stations may write, never read
    eavesdropper = Collector(broker.station("HD-KK-01"), broker.port, "quantrac/#")
    station = broker.station("HD-KK-02")
    try:
        assert not connack(station, broker.port).is_failure
        forged = publish_v5(station, "quantrac/HD-KK-01/readings", b'{"source_id": "HD-KK-01"}')
        own = publish_v5(station, "quantrac/HD-KK-02/readings", b'{"source_id": "HD-KK-02"}')
        wait_until(lambda: len(gateway.got()) >= 1, 10, message=broker.log_tail)
        # a round trip of the eavesdropper's own: anything routed to it before is in by now
        publish_v5(eavesdropper.client, "quantrac/HD-KK-01/readings", b"{}")
        wait_until(lambda: len(gateway.got()) >= 2, 10, message=broker.log_tail)
    finally:
        _close(station, gateway.client, eavesdropper.client)

    assert forged.value == NOT_AUTHORIZED, forged
    assert not own.is_failure, own
    # the forged message came first on the same connection: had it passed, it would be first
    assert gateway.got() == [
        ("quantrac/HD-KK-02/readings", b'{"source_id": "HD-KK-02"}'),
        ("quantrac/HD-KK-01/readings", b"{}"),
    ]
    assert eavesdropper.got() == []


@pytest.mark.parametrize("who", ["anonymous", "wrong-password", "unknown-user", "gateway-wrong"])
def test_anonymous_and_wrong_logins_are_refused(broker: Broker, who: str) -> None:
    user, password = {
        "anonymous": (None, None),
        "wrong-password": ("HD-KK-01", broker.accounts().password("HD-KK-02")),
        "unknown-user": ("HD-XX-99", "x" * 16),
        "gateway-wrong": (broker.gateway[0], "CHANGE-ME"),
    }[who]
    client = broker.client(user, password)
    try:
        code = connack(client, broker.port)
    finally:
        client.loop_stop()
    assert code.is_failure and code.value in (134, 135), code  # bad credentials / not authorised


def test_sighup_reloads_the_files_written_again(broker: Broker) -> None:
    """deploy/README.md, "MQTT": change a password, run mqtt-acl again, SIGHUP Mosquitto."""
    old = broker.accounts().password("HD-KK-03")
    connected = broker.station("HD-KK-03")
    assert not connack(connected, broker.port).is_failure
    dropped = threading.Event()
    connected.on_disconnect = lambda *args: dropped.set()

    path = accounts_path(broker.data_dir)
    passwords = json.loads(path.read_text(encoding="utf-8"))
    new = passwords["HD-KK-03"] = "rotated-" + uuid.uuid4().hex
    path.write_text(json.dumps(passwords), encoding="utf-8")
    mqtt_acl(broker.env, broker.auth_dir)
    broker.proc.send_signal(signal.SIGHUP)

    # the connection made with the old password is closed once the broker has reloaded
    assert dropped.wait(10), broker.log_tail()
    connected.loop_stop()
    before, after = broker.client("HD-KK-03", old), broker.client("HD-KK-03", new)
    try:
        refused, accepted = connack(before, broker.port), connack(after, broker.port)
    finally:
        before.loop_stop()
        _close(after)
    assert refused.is_failure, refused
    assert not accepted.is_failure, accepted

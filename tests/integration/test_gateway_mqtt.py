"""The MQTT door against a real Mosquitto and the real embedded broker.

Mosquitto runs on 127.0.0.1:1883 on these machines; when it does not, the test starts a private
``mosquitto`` on a free port. With neither, the test is skipped on a laptop and FAILS in CI
(``CI=true``): a missing service must not pass silently there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.settings import Settings
from core.topics import ensure_topics
from stations.registry import Registry
from streams.embedded import EmbeddedBroker, free_port, wait_for_port
from tests.conftest import wait_until
from tests.integration.gateway_support import (
    SecuredBroker,
    connack,
    gw_settings,
    publish_v5,
    read_topic,
    reading,
    registry,
    running_gateway,
    secured_broker,
)

pytestmark = pytest.mark.integration
__all__ = ["gw_settings", "registry", "secured_broker"]  # fixtures used by name

T = "20261124100500"
SO2 = {"parameter": "SO2", "value": 12.5, "unit": "µg/Nm3", "measured_at": T, "status": "00"}


def _reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


@pytest.fixture(scope="module")
def mqtt_url() -> Iterator[str]:
    if _reachable("127.0.0.1", 1883):
        yield "mqtt://127.0.0.1:1883"
        return
    binary = shutil.which("mosquitto")
    if binary is None:
        why = "Mosquitto is not reachable on 127.0.0.1:1883 and not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (CI=true: a missing service is a failure)")
        pytest.skip(why)
    port = free_port()
    proc = subprocess.Popen([binary, "-p", str(port)], stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, 10)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
    client.connect(host, int(port))
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def _forget_session(url: str, client_id: str) -> None:
    """Drop the gateway's persistent session from the shared Mosquitto (test hygiene)."""
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect(host, int(port))
    client.disconnect()


def test_mqtt_readings_and_sender_mismatch(
    gw_settings: Settings, registry: Registry, mqtt_url: str
) -> None:
    root = f"qt{uuid.uuid4().hex[:8]}"
    settings = gw_settings.model_copy(update={"mqtt_url": mqtt_url})
    good = json.dumps({"source_id": "HD-KK-01", "readings": [SO2]}).encode()
    with running_gateway(settings, registry, mqtt_topic_root=root) as gw:
        assert gw.gateway.mqtt_on
        _publish(
            mqtt_url,
            [
                (f"{root}/HD-KK-01/readings", good),
                (f"{root}/HD-KK-02/readings", good),  # HD-KK-02 sends HD-KK-01's readings
                (f"{root}/HD-KK-03/readings", b"\xff not json"),
            ],
        )
        raw = read_topic(settings, "readings.raw", 1)
        rejected = read_topic(settings, "readings.rejected", 2)
        counted = gw.counter("quantrac_rejections_total", channel="mqtt", reason="sender_mismatch")
    _forget_session(mqtt_url, f"{settings.app_id}-gateway")

    (only,) = raw
    assert only.key == "HD-KK-01"
    name = f"mqtt-{only.value['origin'].replace(':', '-')}.json"
    assert only.value == reading(
        "HD-KK-01",
        "SO2",
        12.5,
        "µg/Nm3",
        only.value["origin"],
        channel="mqtt",
        archive_path=f"2026-11-24/HD-KK-01/{name}",
    )
    assert only.value["origin"].startswith("json:")
    assert sorted((m.key, m.value["reason"]) for m in rejected) == [
        ("HD-KK-02", "sender_mismatch"),
        ("HD-KK-03", "not_utf8"),
    ]
    assert counted == 1
    archived = settings.data_dir / "archive" / "2026-11-24" / "HD-KK-01"
    assert [p.read_bytes() for p in archived.iterdir()] == [good]
    # HD-KK-02's message as HD-KK-01 is kept apart from the archive evidence reads (issue 16)
    forged = settings.data_dir / "quarantine" / "2026-11-24" / "HD-KK-02"
    assert [p.read_bytes() for p in forged.iterdir()] == [good]


def test_mqtt_is_off_without_a_url(gw_settings: Settings, registry: Registry) -> None:
    assert gw_settings.mqtt_url is None
    with running_gateway(gw_settings, registry) as gw:
        assert not gw.gateway.mqtt_on


# ---------------------------------------------------------------------------------------------
# per-station credentials and ACL (`quantrac mqtt-acl`), on a private Mosquitto


def test_acl_a_station_publishes_only_under_its_own_topic(
    gw_settings: Settings, registry: Registry, secured_broker: SecuredBroker
) -> None:
    root = gw_settings.mqtt_topic_root
    settings = gw_settings.model_copy(update={"mqtt_url": secured_broker.url})
    # HD-KK-02 impersonates HD-KK-01 completely: its topic and its source_id. The gateway alone
    # cannot tell; only the broker's ACL stops it.
    forged = json.dumps({"source_id": "HD-KK-01", "readings": [SO2]}).encode()
    own = json.dumps({"source_id": "HD-KK-02", "readings": [{**SO2, "value": 7.0}]}).encode()
    with running_gateway(settings, registry) as gw:
        assert gw.gateway.mqtt_on  # the gateway's own login connects and may subscribe
        station = secured_broker.station("HD-KK-02")
        assert not connack(station, secured_broker.port).is_failure
        try:
            refused = publish_v5(station, f"{root}/HD-KK-01/readings", forged)
            accepted = publish_v5(station, f"{root}/HD-KK-02/readings", own)
        finally:
            station.disconnect()
            station.loop_stop()
        raw = read_topic(settings, "readings.raw", 1)
        rejected = read_topic(settings, "readings.rejected", 0, timeout_s=2)

    assert refused.value == 135, refused  # "Not authorized"
    assert not accepted.is_failure, accepted
    # the refused message came first on the same connection: had it passed, it would be here
    assert [(m.key, m.value["value"]) for m in raw] == [("HD-KK-02", 7.0)]
    assert rejected == []


@pytest.mark.parametrize(
    ("user", "password"),
    [(None, None), ("HD-KK-01", "wrong"), ("nobody", "x")],
    ids=["anonymous", "wrong-password", "unknown-user"],
)
def test_acl_anonymous_and_wrong_logins_are_refused(
    secured_broker: SecuredBroker, user: str | None, password: str | None
) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user is not None:
        client.username_pw_set(user, password)
    try:
        code = connack(client, secured_broker.port)
    finally:
        client.loop_stop()
    assert code.is_failure and code.value in (134, 135), code  # bad credentials / not authorised


# ---------------------------------------------------------------------------------------------
# Kafka down: the message is kept and published once the broker is back


def test_message_is_published_after_the_broker_comes_back(
    registry: Registry, mqtt_url: str, tmp_path: Path
) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_url=broker.url,
        data_dir=tmp_path,
        topic_prefix=f"t{tag}.",
        app_id=f"quantrac-test-{tag}",
        topic_partitions=2,
        mqtt_url=mqtt_url,
        mqtt_topic_root=f"qt{tag}",
        gateway_publish_timeout_s=1.0,
    )
    ensure_topics(settings)
    body = json.dumps({"source_id": "HD-KK-01", "readings": [SO2]}).encode()
    try:
        with running_gateway(settings, registry) as gw:
            broker.stop()
            _publish(mqtt_url, [(f"qt{tag}/HD-KK-01/readings", body)])
            failures = {"channel": "mqtt"}
            wait_until(
                lambda: gw.counter("quantrac_gateway_publish_failures_total", **failures) >= 1,
                20,
            )
            broker = EmbeddedBroker(port=broker.port, log_path=tmp_path / "tansu.log").start()
            ensure_topics(settings)  # Tansu keeps topics in memory: a restart starts empty
            raw = read_topic(settings, "readings.raw", 1, timeout_s=30)
        _forget_session(mqtt_url, f"{settings.app_id}-gateway")
    finally:
        broker.stop()
    assert [(m.key, m.value["parameter"], m.value["value"]) for m in raw] == [
        ("HD-KK-01", "SO2", 12.5)
    ]

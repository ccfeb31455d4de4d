"""The MQTT door: subscribe to ``<root>/<source id>/readings`` (the JSON form), QoS 1.

The topic names the sender: a body whose ``source_id`` differs is refused whole as
``sender_mismatch``. That identity is only as strong as the broker's ACL, so Mosquitto should
let each station's login publish to its own topic only (``pattern write quantrac/%u/readings``).

Delivery is at-least-once end to end: the session is persistent (fixed client id, no clean
session) and acknowledgements are manual — the PUBACK goes to the broker only after the archive
and Kafka acknowledged; a message that could not be published is not acknowledged, so Mosquitto
delivers it again when the session resumes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from stations.gateway import Ingest, PublishError
from streams.records import Channel

log = logging.getLogger(__name__)

QOS = 1
NO_SENDER = "-"


def topic_source(topic: str, root: str) -> str | None:
    """``quantrac/HD-KK-01/readings`` → ``HD-KK-01``; None for any other shape."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != root or parts[2] != "readings" or not parts[1]:
        return None
    return parts[1]


class MqttError(RuntimeError):
    """The MQTT broker could not be reached or refused the subscription."""


class MqttIngest:
    def __init__(
        self,
        ingest: Ingest,
        url: str,
        *,
        topic_root: str = "quantrac",
        client_id: str = "quantrac-gateway",
        connect_timeout_s: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp", ""):
            raise ValueError(f"mqtt_url {url!r}: scheme must be mqtt://")
        self.ingest = ingest
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.topic_root = topic_root
        self.subscription = f"{topic_root}/+/readings"
        self.connect_timeout_s = connect_timeout_s
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            manual_ack=True,
        )
        if parts.username:
            self._client.username_pw_set(parts.username, parts.password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._client.connect, self.host, self.port, 30)
        except OSError as exc:
            raise MqttError(f"MQTT broker {self.host}:{self.port}: {exc}") from exc
        self._client.loop_start()
        if not await asyncio.to_thread(self._subscribed.wait, self.connect_timeout_s):
            self._client.loop_stop()
            raise MqttError(
                f"MQTT broker {self.host}:{self.port}: no subscription to {self.subscription} "
                f"after {self.connect_timeout_s:.0f}s"
            )

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if rc.is_failure:
            log.error("MQTT %s:%d refused the connection: %s", self.host, self.port, rc)
            return
        client.subscribe(self.subscription, qos=QOS)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any
    ) -> None:
        if all(not c.is_failure for c in codes):
            log.info("MQTT: subscribed to %s on %s:%d", self.subscription, self.host, self.port)
            self._subscribed.set()
        else:
            log.error("MQTT: subscription to %s refused: %s", self.subscription, codes)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # An empty source level ("quantrac//readings") names nobody: refused as a mismatch.
        account = topic_source(msg.topic, self.topic_root) or NO_SENDER
        delivery = self.ingest.receive_json(Channel.MQTT, account, bytes(msg.payload))
        try:
            self.ingest.commit_blocking(delivery)
        except (PublishError, TimeoutError, OSError) as exc:
            log.error(
                "MQTT %s mid %s: not published, left unacknowledged for redelivery: %s",
                msg.topic,
                msg.mid,
                exc,
            )
            return
        client.ack(msg.mid, msg.qos)

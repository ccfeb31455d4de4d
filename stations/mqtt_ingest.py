"""The MQTT door: subscribe to ``<root>/<source id>/readings`` (the JSON form), QoS 1.

The topic names the sender: a body whose ``source_id`` differs is refused whole as
``sender_mismatch``. That identity is only as strong as the broker's ACL: ``quantrac mqtt-acl``
(``stations/mqtt_acl.py``) writes Mosquitto's password and ACL files so that each station's
login may publish under ``<root>/<its source id>/`` only and only the gateway may read.

Delivery is at-least-once end to end: the session is persistent (fixed client id, no clean
session) and acknowledgements are manual — the PUBACK goes to the broker only after the archive
and Kafka acknowledged. Messages are handled one by one on a worker thread, off paho's network
thread (which keeps the connection alive) and off the gateway's event loop (parsing a large
body takes a while). A message that could not be archived or published is kept and tried again
(backoff up to ``RETRY_MAX_S``) until it is; if the gateway stops first, it stays unacknowledged
in the session and Mosquitto delivers it again when the gateway reconnects. Mosquitto sends at
most ``max_inflight_messages`` unacknowledged messages, which bounds the queue here.

Limits (``stations/ingest_limits.py``): a body over the size limit is dead-lettered as
``file_too_large`` (its head as evidence); a station over its deliveries per minute cannot be
told to slow down, so the excess is counted (``quantrac_rejections_total{reason="rate_limited"}``),
logged and acknowledged, not published.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.records import Channel
from stations.gateway import Delivery, Ingest, PublishError

log = logging.getLogger(__name__)

QOS = 1
NO_SENDER = "-"
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0


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
        self._queue: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name="mqtt-ingest", daemon=True)
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
        self._worker.start()
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
        # Stop the worker first: a message it holds stays unacknowledged in the session.
        self._stopping.set()
        self._queue.put(None)
        if self._worker.is_alive():
            self._worker.join(10)
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
        self._queue.put(msg)

    def _work(self) -> None:
        while (msg := self._queue.get()) is not None:
            if self._handle(msg):
                self._client.ack(msg.mid, msg.qos)

    def _handle(self, msg: mqtt.MQTTMessage) -> bool:
        """Judge, archive, publish one message; True when it may be acknowledged."""
        # An empty source level ("quantrac//readings") names nobody: refused as a mismatch.
        account = topic_source(msg.topic, self.topic_root) or NO_SENDER
        payload = bytes(msg.payload)
        if not self.ingest.admit(Channel.MQTT, account):
            return True  # counted and logged by admit(); a retry would only add to the flood
        limit = self.ingest.limits.max_body_bytes
        if len(payload) > limit:
            name = f"mqtt-{account}-{msg.mid}"
            delivery = self.ingest.receive_oversize(
                Channel.MQTT, account, name, payload[:limit], len(payload)
            )
        else:
            delivery = self.ingest.receive_json(Channel.MQTT, account, payload)
        return self._commit(msg, delivery)

    def _commit(self, msg: mqtt.MQTTMessage, delivery: Delivery) -> bool:
        wait = RETRY_FIRST_S
        while True:
            try:
                self.ingest.commit_blocking(delivery)
                return True
            except (PublishError, TimeoutError, OSError) as exc:
                log.error(
                    "MQTT %s mid %s: not published, retrying in %.1f s: %s",
                    msg.topic,
                    msg.mid,
                    wait,
                    exc,
                )
            if self._stopping.wait(wait):
                log.warning(
                    "MQTT %s mid %s: left unacknowledged for redelivery", msg.topic, msg.mid
                )
                return False
            wait = min(wait * 2, RETRY_MAX_S)

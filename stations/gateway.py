"""``quantrac gateway``: receive what stations send, archive it, publish it, then say "accepted".

Three doors (FTP in ``ftp_server``, HTTP in ``http_ingest``, MQTT in ``mqtt_ingest``) share one
path, :class:`Ingest`:

1. **judge** (pure): parse the Circular 10 file or JSON body, and refuse the whole of it with
   ``SENDER_MISMATCH`` when the authenticated account delivers for another source;
2. **archive** the original bytes under ``data_dir/archive/<local date>/<source>/<name>``, or,
   for a refused body (:func:`refusal`: another source's data, no or an unregistered sender),
   in the same layout under ``data_dir/quarantine/``, which evidence packages never read;
3. **publish** the readings to ``readings.raw`` as one ``RawBatch`` message (keyed by source
   id) and each rejection to ``readings.rejected``, each record carrying its ``archive_path``
   (None when quarantined; the path also rides along as the ``quantrac-archive`` or
   ``quantrac-quarantine`` header) and wait for the broker's acknowledgement;
4. only then answer the sender (FTP 226, HTTP 202, MQTT PUBACK). A crash before step 4 leaves
   the sender without an acknowledgement, so it sends again: nothing is lost.

Every rejection is counted (``quantrac_rejections_total{channel,reason}``) and dead-lettered.
A rejection whose sender is authenticated but which names no registered source carries the
account as ``source_id`` (the sender is known even when the content is not).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import signal
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from core.clock import Clock, utc_now
from core.errors import ParseError, RejectReason
from core.metrics import Metrics
from core.records import Channel, RawReading, Rejection, raw_batches
from core.settings import Settings
from core.tls import cert_and_key, server_context
from core.topics import RAW, REJECTED, bootstrap_servers
from stations.accounts import Accounts, accounts_path, load_or_create
from stations.archive import Archive
from stations.circular10 import (
    EXCERPT_BYTES,
    MAX_FILE_BYTES,
    ParseResult,
    parse_file,
    parse_filename,
    parse_json,
)
from stations.ingest_limits import IngestLimits, RateLimiter, cap_rejections
from stations.registry import Registry, load_registry

if TYPE_CHECKING:
    from stations.http_ingest import IngestTokens

log = logging.getLogger(__name__)

ARCHIVE_HEADER = "quantrac-archive"
QUARANTINE_HEADER = "quantrac-quarantine"
# Whole-file evidence above this is cut to its first EXCERPT_BYTES (base64 grows it by 4/3 and
# a Kafka message is capped near 1 MiB); the message names the archived copy instead.
MAX_EVIDENCE_BYTES = 512 * 1024


class PublishError(RuntimeError):
    """The broker did not acknowledge in time; the sender is told to send again."""


# ---------------------------------------------------------------------------------------------
# judging (pure)


@dataclass(frozen=True)
class Delivery:
    """One received body, judged, ready to be archived and published."""

    channel: Channel
    account: str | None  # authenticated sender (FTP/HTTP user, MQTT topic), if any
    name: str  # archive file name
    data: bytes  # what the archive keeps: the whole body, or the head of an oversize one
    received_at: datetime
    result: ParseResult
    # rejections folded into one too_many_rejections record, by reason (ingest_limits)
    summarised: Counter[str] = field(default_factory=Counter)

    @property
    def source_id(self) -> str | None:
        """Whom this is filed under: the identified source, else the sender."""
        return self.result.source_id or self.account


@dataclass(frozen=True)
class Receipt:
    """What the sender is told once the broker acknowledged."""

    source_id: str | None
    origin: str
    archive: Path  # relative to the archive root (the quarantine root when ``quarantined``)
    accepted: int
    rejections: list[Rejection] = field(default_factory=list)
    quarantined: bool = False

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    @property
    def reasons(self) -> list[str]:
        return [r.reason for r in self.rejections]


def _file_rejection(
    reason: RejectReason,
    message: str,
    data: bytes,
    *,
    channel: Channel,
    received_at: datetime,
    source_id: str | None,
    origin: str,
    field_name: str | None = None,
) -> Rejection:
    return Rejection(
        reason=reason.value,
        message=message,
        channel=channel.value,
        received_at=received_at,
        original_b64=base64.b64encode(data).decode("ascii"),
        source_id=source_id,
        origin=origin,
        line=None,
        field=field_name,
    )


def _attribute(result: ParseResult, account: str | None) -> ParseResult:
    """Rejections that name no source are the authenticated sender's."""
    if account is None:
        return result
    for r in result.rejections:
        if r.source_id is None:
            r.source_id = account
    return result


def _bound_evidence(result: ParseResult) -> ParseResult:
    limit = (MAX_EVIDENCE_BYTES * 4) // 3 + 4
    for r in result.rejections:
        if len(r.original_b64) > limit:
            head = base64.b64decode(r.original_b64)[:EXCERPT_BYTES]
            r.original_b64 = base64.b64encode(head).decode("ascii")
            r.message += f" (evidence: first {EXCERPT_BYTES} bytes; the whole file is archived)"
    return result


def judge_file(
    name: str,
    data: bytes,
    registry: Registry,
    *,
    account: str | None,
    channel: Channel,
    received_at: datetime,
    future_tolerance_s: float,
) -> ParseResult:
    """Parse a Circular 10 upload; refuse it whole if ``account`` sends as another source."""
    try:
        identity = parse_filename(name)
    except ParseError:
        identity = None  # parse_file reports the name problem
    if identity is not None and account is not None:
        claimed = registry.by_ftp(identity.province, identity.facility, identity.station)
        if claimed is not None and claimed.id != account:
            result = ParseResult(origin=name, source_id=None)
            result.rejections.append(
                _file_rejection(
                    RejectReason.SENDER_MISMATCH,
                    f"account {account} delivered a file of {claimed.id}",
                    data,
                    channel=channel,
                    received_at=received_at,
                    source_id=account,
                    origin=name,
                    field_name="name",
                )
            )
            return _bound_evidence(result)
    result = parse_file(
        name,
        data,
        registry,
        received_at=received_at,
        channel=channel,
        future_tolerance_s=future_tolerance_s,
    )
    return _bound_evidence(_attribute(result, account))


def judge_json(
    data: bytes,
    registry: Registry,
    *,
    account: str | None,
    channel: Channel,
    received_at: datetime,
    future_tolerance_s: float,
    origin: str = "",
) -> ParseResult:
    """Parse the JSON form; refuse it whole if its ``source_id`` is not ``account``."""
    result = parse_json(
        data,
        registry,
        received_at=received_at,
        channel=channel,
        origin=origin,
        future_tolerance_s=future_tolerance_s,
    )
    if account is not None and result.source_id is not None and result.source_id != account:
        claimed = result.source_id
        result = ParseResult(origin=result.origin, source_id=None)
        result.rejections.append(
            _file_rejection(
                RejectReason.SENDER_MISMATCH,
                f"account {account} delivered readings of {claimed}",
                data,
                channel=channel,
                received_at=received_at,
                source_id=account,
                origin=result.origin,
                field_name="source_id",
            )
        )
    return _bound_evidence(_attribute(result, account))


def judge_oversize(
    name: str,
    head: bytes,
    size: int,
    *,
    account: str | None,
    channel: Channel,
    received_at: datetime,
    limit: int = MAX_FILE_BYTES,
) -> ParseResult:
    """A body cut off at the size limit: one FILE_TOO_LARGE with its first bytes as evidence."""
    result = ParseResult(origin=name, source_id=None)
    result.rejections.append(
        _file_rejection(
            RejectReason.FILE_TOO_LARGE,
            f"more than {limit} bytes ({size} received before the transfer was cut; "
            f"first {min(len(head), EXCERPT_BYTES)} bytes kept)",
            head[:EXCERPT_BYTES],
            channel=channel,
            received_at=received_at,
            source_id=account,
            origin=name,
        )
    )
    return result


def refusal(delivery: Delivery, registry: Registry) -> str | None:
    """Why a body goes to the quarantine, not the archive (None: it is archived).

    The archive is the evidence store: ``<date>/<source>/`` must hold only what that source's
    own authenticated account delivered, so a body sent as another source (or by no registered
    sender) never lands where an evidence package could take it for a station's original."""
    if any(r.reason == RejectReason.SENDER_MISMATCH for r in delivery.result.rejections):
        return RejectReason.SENDER_MISMATCH.value
    if delivery.account is None:
        return "unauthenticated"
    if registry.find(delivery.account) is None:
        return "unregistered_account"
    return None


# ---------------------------------------------------------------------------------------------
# publishing


class Publisher:
    """One Kafka producer for both topics; :meth:`publish` returns once the broker acknowledged."""

    def __init__(self, settings: Settings, *, timeout_s: float | None = None) -> None:
        self.raw_topic = settings.topic(RAW.name)
        self.rejected_topic = settings.topic(REJECTED.name)
        timeout_s = settings.gateway_publish_timeout_s if timeout_s is None else timeout_s
        self.timeout_s = timeout_s
        self._config = {
            "bootstrap_servers": bootstrap_servers(settings),
            "client_id": f"{settings.app_id}-gateway",
            "acks": "all",
            "enable_idempotence": False,  # Tansu does not implement idempotent producers
            "linger_ms": 5,
            "max_request_size": 2 * 1024 * 1024,
            "request_timeout_ms": int(timeout_s * 1000),
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Create (on the running loop) and connect the producer."""
        self._producer = AIOKafkaProducer(**self._config)
        await self._producer.start()

    async def stop(self) -> None:
        """Flush what is in flight and disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(
        self,
        readings: Sequence[RawReading],
        rejections: Sequence[Rejection],
        *,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        hdrs = list(headers)
        producer = self._producer
        if producer is None:
            raise PublishError("publisher not started")
        try:
            async with asyncio.timeout(self.timeout_s):
                futures = [
                    await producer.send(
                        self.raw_topic,
                        b.dumps(serializer="json"),
                        key=b.source_id.encode(),
                        headers=hdrs,
                    )
                    for b in raw_batches(readings, by_time=False)
                ]
                futures += [
                    await producer.send(
                        self.rejected_topic,
                        r.dumps(serializer="json"),
                        key=r.source_id.encode() if r.source_id else None,
                        headers=hdrs,
                    )
                    for r in rejections
                ]
                await asyncio.gather(*futures)
        except Exception as exc:  # aiokafka raises KafkaError subclasses and TimeoutError
            raise PublishError(
                f"{len(readings)} readings / {len(rejections)} rejections to "
                f"{self.raw_topic}/{self.rejected_topic}: {exc.__class__.__name__}: {exc}"
            ) from exc


# ---------------------------------------------------------------------------------------------
# the shared path


class Ingest:
    """Judge → archive → publish → count, shared by the three doors."""

    def __init__(
        self,
        registry: Registry,
        archive: Archive,
        publisher: Publisher,
        metrics: Metrics,
        *,
        quarantine: Archive,
        future_tolerance_s: float,
        clock: Clock = utc_now,
        loop: asyncio.AbstractEventLoop | None = None,
        limits: IngestLimits | None = None,
    ) -> None:
        self.registry = registry
        self.archive = archive
        self.quarantine = quarantine
        self.limits = limits or IngestLimits.defaults()
        self.rate = RateLimiter(self.limits.deliveries_per_minute)
        self.publisher = publisher
        self.metrics = metrics
        self.future_tolerance_s = future_tolerance_s
        self.clock = clock
        self.loop = loop

    def receive_file(
        self, channel: Channel, account: str | None, name: str, data: bytes
    ) -> Delivery:
        at = self.clock()
        result = judge_file(
            name,
            data,
            self.registry,
            account=account,
            channel=channel,
            received_at=at,
            future_tolerance_s=self.future_tolerance_s,
        )
        return self._capped(Delivery(channel, account, name, data, at, result))

    def receive_json(
        self, channel: Channel, account: str | None, data: bytes, *, origin: str = ""
    ) -> Delivery:
        at = self.clock()
        result = judge_json(
            data,
            self.registry,
            account=account,
            channel=channel,
            received_at=at,
            future_tolerance_s=self.future_tolerance_s,
            origin=origin,
        )
        name = f"{channel.value}-{result.origin.replace(':', '-')}.json"
        return self._capped(Delivery(channel, account, name, data, at, result))

    def _capped(self, delivery: Delivery) -> Delivery:
        capped = cap_rejections(delivery.result.rejections, self.limits.max_rejections)
        if not capped.summarised:
            return delivery
        delivery.result.rejections[:] = capped.rejections
        return replace(delivery, summarised=capped.summarised)

    def admit(self, channel: Channel, account: str) -> bool:
        """Count a delivery against the account's rate; False (counted, logged) when over it."""
        if self.rate.admit(account):
            return True
        self.metrics.rejections.labels(channel.value, RejectReason.RATE_LIMITED.value).inc()
        log.warning(
            "%s %s: over %d deliveries per minute, refused (%s)",
            channel.value,
            account,
            self.limits.deliveries_per_minute,
            RejectReason.RATE_LIMITED.value,
        )
        return False

    def receive_oversize(
        self, channel: Channel, account: str | None, name: str, head: bytes, size: int
    ) -> Delivery:
        at = self.clock()
        result = judge_oversize(
            name,
            head,
            size,
            account=account,
            channel=channel,
            received_at=at,
            limit=self.limits.max_body_bytes,
        )
        return Delivery(channel, account, f"{name}.head", head[:EXCERPT_BYTES], at, result)

    async def commit(self, delivery: Delivery) -> Receipt:
        """Archive (or quarantine), publish, wait for the acknowledgement, count.

        Raises PublishError or OSError (the archive), each counted."""
        refused = refusal(delivery, self.registry)
        store = self.archive if refused is None else self.quarantine
        channel = delivery.channel.value
        try:
            relative = await asyncio.to_thread(
                store.store,
                delivery.name,
                delivery.data,
                received_at=delivery.received_at,
                source_id=delivery.source_id,
            )
        except OSError:
            self.metrics.gateway_archive_failures.labels(channel).inc()
            raise
        result = delivery.result
        archive_path = relative.as_posix() if refused is None else None
        for record in [*result.readings, *result.rejections]:
            record.archive_path = archive_path
        header = ARCHIVE_HEADER if refused is None else QUARANTINE_HEADER
        try:
            await self.publisher.publish(
                result.readings,
                result.rejections,
                headers=[(header, relative.as_posix().encode())],
            )
        except PublishError:
            self.metrics.gateway_publish_failures.labels(channel).inc()
            raise
        if result.readings:
            self.metrics.readings_received.labels(channel, "accepted").inc(len(result.readings))
        # every judged rejection, also those the summary record stands for
        judged = len(result.rejections) + delivery.summarised.total() - bool(delivery.summarised)
        if judged:
            self.metrics.readings_received.labels(channel, "rejected").inc(judged)
        for r in result.rejections:
            self.metrics.rejections.labels(channel, r.reason).inc()
        for reason, n in delivery.summarised.items():
            self.metrics.rejections.labels(channel, reason).inc(n)
        log.info(
            "%s %r from %s: %d accepted, %d rejected %s; %s %s",
            channel,
            result.origin,
            delivery.account or delivery.source_id or "?",
            len(result.readings),
            len(result.rejections),
            sorted({r.reason for r in result.rejections}) if result.rejections else "",
            "archived" if refused is None else f"quarantined ({refused})",
            relative,
        )
        return Receipt(
            source_id=delivery.source_id,
            origin=result.origin,
            archive=relative,
            accepted=len(result.readings),
            rejections=list(result.rejections),
            quarantined=refused is not None,
        )

    def commit_blocking(self, delivery: Delivery) -> Receipt:
        """:meth:`commit` from a server thread (pyftpdlib, paho), on the gateway's event loop."""
        assert self.loop is not None, "Ingest.loop is set when the gateway starts"
        future = asyncio.run_coroutine_threadsafe(self.commit(delivery), self.loop)
        return future.result(timeout=self.publisher.timeout_s + 30)


# ---------------------------------------------------------------------------------------------
# the process


class Gateway:
    """FTP + HTTP (+ MQTT when ``settings.mqtt_url`` is set) around one :class:`Ingest`.

    ``ftp_port``/``http_port`` 0 picks free ports (read them back after :meth:`start`).
    Tests inject ``clock``, ``metrics`` (fresh registry) and ``mqtt_topic_root``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: Registry | None = None,
        metrics: Metrics | None = None,
        clock: Clock = utc_now,
        host: str | None = None,
        ftp_port: int | None = None,
        http_port: int | None = None,
        mqtt_topic_root: str | None = None,
        tokens: IngestTokens | None = None,  # API tokens at the HTTP door (quantrac_cli wires)
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.registry = registry or load_registry(settings.registry_path)
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.host: str = host or settings.gateway_host
        self.ftp_port = settings.gateway_ftp_port if ftp_port is None else ftp_port
        self.http_port = settings.gateway_http_port if http_port is None else http_port
        self.mqtt_topic_root: str = mqtt_topic_root or settings.mqtt_topic_root
        self.archive = Archive(settings.data_dir / "archive")
        self.quarantine = Archive(settings.data_dir / "quarantine")
        self.publisher = Publisher(settings)
        self.accounts: Accounts | None = None
        self.ingest: Ingest | None = None
        self._ftp: object | None = None
        self._http: object | None = None
        self._mqtt: object | None = None

    async def start(self) -> None:
        from stations.ftp_server import FtpIngest
        from stations.http_ingest import HttpIngest

        path = accounts_path(self.settings.data_dir)
        self.accounts, created = load_or_create(path, [s.id for s in self.registry.sources])
        if created:
            print(
                f"created {len(created)} ingest account(s) ({', '.join(created[:5])}"
                f"{', …' if len(created) > 5 else ''}); passwords in {path} (mode 0600)",
                flush=True,
            )
        await self.publisher.start()
        self.ingest = Ingest(
            self.registry,
            self.archive,
            self.publisher,
            self.metrics,
            quarantine=self.quarantine,
            future_tolerance_s=self.settings.future_tolerance_s,
            clock=self.clock,
            loop=asyncio.get_running_loop(),
            limits=IngestLimits.from_settings(self.settings),
        )
        try:
            ftp = FtpIngest(
                self.ingest,
                self.accounts,
                self.settings.data_dir / "ftp",
                host=self.host,
                port=self.ftp_port,
                passive_ports=self.settings.gateway_ftp_passive_ports,
                masquerade_address=self.settings.gateway_ftp_masquerade_address,
                tls=self.settings.gateway_ftp_tls,
                cert_and_key=cert_and_key(self.settings),
            )
            ftp.start()
            self._ftp = ftp
            self.ftp_port = ftp.port
            http = HttpIngest(
                self.ingest,
                self.accounts,
                self.metrics,
                self.host,
                self.http_port,
                ssl_context=server_context(self.settings),
                tokens=self.tokens,
            )
            await http.start()
            self._http = http
            self.http_port = http.port
            if self.settings.mqtt_url:
                from stations.mqtt_ingest import MqttIngest

                mqtt = MqttIngest(
                    self.ingest,
                    self.settings.mqtt_url,
                    topic_root=self.mqtt_topic_root,
                    client_id=f"{self.settings.app_id}-gateway",
                )
                await mqtt.start()
                self._mqtt = mqtt
        except BaseException:
            await self.stop()
            raise
        log.info(
            "gateway: FTP %s:%d, HTTP %s:%d, MQTT %s; %d accounts",
            self.host,
            self.ftp_port,
            self.host,
            self.http_port,
            f"{self.settings.mqtt_url} ({self.mqtt_topic_root}/+/readings)"
            if self._mqtt
            else "off",
            len(self.accounts),
        )

    @property
    def mqtt_on(self) -> bool:
        return self._mqtt is not None

    async def stop(self) -> None:
        """Stop taking input first (MQTT, HTTP, FTP), then flush and close the producer."""
        from stations.ftp_server import FtpIngest
        from stations.http_ingest import HttpIngest

        if self._mqtt is not None:
            from stations.mqtt_ingest import MqttIngest

            assert isinstance(self._mqtt, MqttIngest)
            await self._mqtt.stop()
            self._mqtt = None
        if isinstance(self._http, HttpIngest):
            await self._http.stop()
        self._http = None
        if isinstance(self._ftp, FtpIngest):
            await asyncio.to_thread(self._ftp.stop)
        self._ftp = None
        await self.publisher.stop()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve(
    settings: Settings, stop: asyncio.Event | None = None, tokens: IngestTokens | None = None
) -> None:
    """Run the gateway until ``stop`` is set, or SIGTERM/SIGINT."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Gateway(settings, tokens=tokens):
            await stop.wait()
            log.info("gateway stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_gateway(settings: Settings, tokens: IngestTokens | None = None) -> None:
    """``quantrac gateway``: blocks until SIGTERM/SIGINT, then stops cleanly."""
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    asyncio.run(serve(settings, tokens=tokens))


def fresh_metrics() -> Metrics:
    """Metrics on a private registry (tests, or a second gateway in one process)."""
    return Metrics(CollectorRegistry())

"""Topic names, their records and how they are created (partitions, retention).

Keyed by source id, so one source's readings stay in order on one partition and the per-source
state of every agent lives on the worker that owns that partition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from core.settings import Settings

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
# A record sent with this header was stored by the stage that made it before it was sent
# (streams/persist.py, store_early): the topic's sink acks it without writing it again.
STORED_HEADER = "quantrac-stored"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    retention_ms: int
    doc: str


RAW = TopicSpec("readings.raw", 7 * DAY_MS, "RawBatch: one delivery's readings, by source id")
VALID = TopicSpec("readings.valid", 7 * DAY_MS, "QcBatch: one source's QcReadings per batch")
REJECTED = TopicSpec("readings.rejected", 90 * DAY_MS, "Rejection: the dead letter, with bytes")
AVERAGES = TopicSpec("averages", 30 * DAY_MS, "Average: 1h/8h/24h/day/NowCast per parameter")
CORRECTED = TopicSpec(
    "averages.corrected",
    30 * DAY_MS,
    "Average of a stack with an O2 reference: its pollutants at the reference O2, the rest as is",
)
VIOLATIONS = TopicSpec("violations", 365 * DAY_MS, "ViolationEvent, keyed by violation id")
AQI = TopicSpec("aqi", 30 * DAY_MS, "AqiRecord: hourly and daily VN_AQI per air station")

WATER_QUALITY = TopicSpec(
    "water_quality", 365 * DAY_MS, "WaterQualityDay: daily QCVN 08 class and VN_WQI per station"
)

TICKS = TopicSpec("ticks", 1 * DAY_MS, "Tick: the leader's clock per source (outage checks)")

ALL = (RAW, VALID, REJECTED, AVERAGES, CORRECTED, VIOLATIONS, AQI, WATER_QUALITY, TICKS)


def bootstrap_servers(settings: Settings) -> str:
    """kafka://h1:9092;h2:9092 (Faust style) → h1:9092,h2:9092 (client style)."""
    assert settings.kafka_url, "kafka_url is set by the runtime before topics are created"
    return settings.kafka_url.removeprefix("kafka://").replace(";", ",")


def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics with the configured partitions and retention; return the created."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers(settings), client_id=f"{settings.app_id}-admin"
    )
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name=settings.topic(t.name),
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs={"retention.ms": str(t.retention_ms)},
            )
            for t in ALL
            if settings.topic(t.name) not in existing
        ]
        created: list[str] = []
        for topic in wanted:  # one at a time: a concurrent creator makes only its own fail
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("created topics %s (%d partitions)", created, settings.topic_partitions)
        return created
    finally:
        admin.close()

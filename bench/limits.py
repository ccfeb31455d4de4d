"""The machine's limits the pipeline is compared with: raw produce, consume and COPY rates.

Same broker, same messages (the JSON of real simulated RawBatch messages, one per source and
measurement time, as the gateway publishes a station's file), no Faust: what aiokafka alone moves
through Tansu, and what one ``COPY`` moves into the ``readings`` table. Rates are given per
message and per reading, so the pipeline's readings/s compare with the broker's like for like.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from kafka.admin import KafkaAdminClient, NewTopic

from core.records import RawReading, raw_batches
from stations.registry import load_registry
from stations.sim_registry import series_for
from stations.simulator import readings
from storage.writer import READING_COLUMNS

Message = tuple[bytes, bytes]  # key, value


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float
    bytes: int = 0

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_s": round(self.per_s, 1)}


def sample_readings(n: int, end: datetime | None = None, seed: int = 7) -> list[RawReading]:
    """``n`` real simulated readings of all registered series, the newest ending at ``end``."""
    series = series_for(load_registry())
    per_s = sum(1 / s.interval_s for s in series)
    end = end or datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(seconds=n / per_s + 600)
    out: list[RawReading] = []
    for r in readings(series, start, end, seed):
        out.append(r)
        if len(out) == n:
            break
    return out


def encode(batch: Sequence[RawReading]) -> list[Message]:
    return [(b.source_id.encode(), b.dumps(serializer="json")) for b in raw_batches(batch)]


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


async def produce_rate(bootstrap: str, topic: str, messages: Sequence[Message]) -> Rate:
    """aiokafka batch API (the fast path KafkaFeed uses), acks=all, pre-encoded messages."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, enable_idempotence=False, acks="all"
    )
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        part = DefaultPartitioner()
        by_partition: dict[int, list[Message]] = defaultdict(list)
        for key, value in messages:
            by_partition[part(key, partitions, partitions)].append((key, value))
        t0 = time.perf_counter()
        futures = []
        for p, msgs in by_partition.items():
            batch = producer.create_batch()
            for key, value in msgs:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=p))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*futures)
        seconds = time.perf_counter() - t0
    finally:
        await producer.stop()
    return Rate(len(messages), seconds, sum(len(k) + len(v) for k, v in messages))


async def consume_rate(bootstrap: str, topic: str, n: int, timeout: float = 60.0) -> Rate:
    """Read ``n`` messages from the start of every partition (no group: no join wait)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 2**20,
        fetch_max_bytes=16 * 2**20,
    )
    await consumer.start()
    try:
        await consumer.topics()  # fetches metadata, so partitions_for_topic knows the topic
        ids = sorted(consumer.partitions_for_topic(topic) or ())
        partitions = [TopicPartition(topic, p) for p in ids]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        got, size = 0, 0
        t0 = time.perf_counter()
        while got < n and time.perf_counter() - t0 < timeout:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                got += len(records)
                size += sum(len(r.value or b"") + len(r.key or b"") for r in records)
        seconds = time.perf_counter() - t0
    finally:
        await consumer.stop()
    return Rate(got, seconds, size)


def reading_row(r: RawReading) -> tuple[Any, ...]:
    """The readings row of a raw reading as if QA/QC had passed it (column order of the writer)."""
    return (
        r.source_id,
        r.parameter,
        r.measured_at,
        r.value,
        r.unit,
        r.status,
        "valid",
        r.value,
        r.unit,
        r.received_at,
        r.channel,
        r.origin,
        None,  # archive_path
        None,  # raw_position
        None,  # manual_id
    )


def copy_rate(url: str, batch: Sequence[RawReading], binary: bool = True) -> Rate:
    """One ``COPY … FROM STDIN`` of the rows straight into ``readings`` (migrated, empty), in
    binary (the limit: the writer sends binary too) or text."""
    rows = [reading_row(r) for r in batch]
    cols = ", ".join(READING_COLUMNS)
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        found: dict[str, str] = dict(conn.execute(_TYPES, {"table": "readings"}).fetchall())
        types = [{"bpchar": "text"}.get(found[c], found[c]) for c in READING_COLUMNS]
        form = " (FORMAT BINARY)" if binary else ""
        with cur.copy(f"COPY readings ({cols}) FROM STDIN{form}") as copy:
            if binary:
                copy.set_types(types)  # char(2) goes as text: same bytes on the wire
            for row in rows:
                copy.write_row(row)
        conn.commit()
    return Rate(len(rows), time.perf_counter() - t0)


_TYPES = """
SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %(table)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""


def writer_rate(url: str, batch: Sequence[RawReading], rows_per_batch: int = 5000) -> Rate:
    """quantrac's idempotent writer (binary COPY straight in; staging + INSERT … ON CONFLICT when
    a batch meets stored rows) on the same rows, in the worker's batch size, into an empty
    ``readings`` table (emptied again after the raw COPYs: same table, same indexes)."""
    from psycopg_pool import AsyncConnectionPool

    from storage.writer import READINGS, BatchWriter

    rows = [reading_row(r) for r in batch]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE readings")

    async def go() -> float:
        async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
            writer = BatchWriter(pool, READINGS)
            t0 = time.perf_counter()
            for i in range(0, len(rows), rows_per_batch):
                await writer.write(rows[i : i + rows_per_batch])
            return time.perf_counter() - t0

    return Rate(len(rows), asyncio.run(go()))


def run_limits(bootstrap: str, url: str, n: int, partitions: int = 8) -> dict[str, Any]:
    """Produce, consume and COPY ``n`` readings (binary, then text), then write them with the
    writer; ``url`` is a migrated, empty database."""
    batch = sample_readings(n)
    messages = encode(batch)
    topic = "bench.limits"
    create_topic(bootstrap, topic, partitions)
    produced = asyncio.run(produce_rate(bootstrap, topic, messages))
    consumed = asyncio.run(consume_rate(bootstrap, topic, len(messages)))
    copied = copy_rate(url, batch)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE readings")
    copied_text = copy_rate(url, batch, binary=False)
    written = writer_rate(url, batch)
    per_message = len(batch) / max(1, len(messages))
    return {
        "messages": len(messages),
        "readings": len(batch),
        "readings_per_message": round(per_message, 2),
        "mean_message_bytes": round(produced.bytes / max(1, produced.count)),
        "produce": {**produced.to_dict(), "readings_per_s": round(produced.per_s * per_message)},
        "consume": {**consumed.to_dict(), "readings_per_s": round(consumed.per_s * per_message)},
        "copy": copied.to_dict(),
        "copy_text": copied_text.to_dict(),
        "writer": {
            **written.to_dict(),
            "ratio_to_copy": round(written.per_s / copied.per_s, 3),
            "ratio_to_text_copy": round(written.per_s / copied_text.per_s, 3),
        },
    }

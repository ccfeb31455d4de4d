"""streams/consumer.py on the real broker: where a seek to committed offsets leaves a partition.

After a rebalance Faust drops the messages its streams took while flow was suspended and relies
on ``seek_to_committed`` to fetch them again. These tests fetch messages in a consumer group
without committing (a worker killed before its first commit), then seek as Faust does.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from streams.consumer import seek_to_committed_or_beginning

N = 5


@contextlib.asynccontextmanager
async def fetched(
    kafka_url: str, committed: int | None
) -> AsyncIterator[tuple[AIOKafkaConsumer, TopicPartition]]:
    """A group consumer on a new 1-partition topic of N messages that has fetched all of them,
    with ``committed`` as the group's committed offset (None: never committed)."""
    servers = kafka_url.removeprefix("kafka://")
    tp = TopicPartition(f"seek-{uuid.uuid4().hex[:8]}", 0)
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    try:
        for i in range(N):
            await producer.send_and_wait(tp.topic, f"m{i}".encode(), partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        group_id=f"seek-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        got: list[bytes] = []
        while len(got) < N:
            batch = await consumer.getmany(tp, timeout_ms=5000)
            assert batch, f"fetched {len(got)} of {N}"
            got += [r.value for r in batch[tp]]
        if committed is not None:
            await consumer.commit({tp: OffsetAndMetadata(committed, "")})
        assert await consumer.position(tp) == N
        yield consumer, tp
    finally:
        await consumer.stop()


async def test_aiokafka_leaves_a_never_committed_partition_where_it_was(kafka_url: str) -> None:
    """The upstream behaviour the fix is for: the fetched messages would not come again."""
    async with fetched(kafka_url, committed=None) as (consumer, tp):
        assert await consumer.seek_to_committed() == {tp: None}
        assert await consumer.position(tp) == N


async def test_a_never_committed_partition_is_sought_to_its_beginning(kafka_url: str) -> None:
    async with fetched(kafka_url, committed=None) as (consumer, tp):
        assert await seek_to_committed_or_beginning(consumer) == ({tp: None}, {tp: 0})
        assert await consumer.position(tp) == 0
        again = await consumer.getmany(tp, timeout_ms=5000)
        assert [r.offset for r in again[tp]][:1] == [0]  # the first message is delivered again


async def test_committed_offsets_are_sought_to_as_before(kafka_url: str) -> None:
    for committed, position in ((0, 0), (3, 3), (N, N)):
        async with fetched(kafka_url, committed=committed) as (consumer, tp):
            starts = {tp: position}
            assert await seek_to_committed_or_beginning(consumer) == ({tp: committed}, starts)
            assert await consumer.position(tp) == position, committed


async def test_partitions_of_left_topics_are_not_moved(kafka_url: str) -> None:
    """Table changelogs: Faust's recovery positions them itself."""
    async with fetched(kafka_url, committed=None) as (consumer, tp):
        committed, starts = await seek_to_committed_or_beginning(
            consumer, leave=frozenset({tp.topic})
        )
        assert (committed, starts) == ({tp: None}, {})
        assert await consumer.position(tp) == N

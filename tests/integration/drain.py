"""When has a worker finished? Its consumer group has committed every input record.

Row counts that stop changing for a few seconds are no proof: a restarted worker spends several
seconds joining its group and restoring its tables, during which nothing changes and nothing is
done. Faust commits an input offset only after the agent acked the event, and our agents ack
only after their outputs are confirmed by the broker (streams/batch.py) or written to the
database (``persist``); so a group whose committed offsets reach the end of every input topic
has stored everything that input produces.

Tansu reports a partition's end (ListOffsets) as the start of its last produce batch + 1, so
the true end is read here: seek to the reported end − 1 and take the last record fetched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from core import topics
from core.settings import Settings
from core.topics import bootstrap_servers

# Every topic a worker consumes whose records change stored rows (ticks only drive outages).
INPUTS = (
    topics.RAW,
    topics.REJECTED,
    topics.AVERAGES,
    topics.VIOLATIONS,
    topics.AQI,
)
# Read by a stage only when each stage is its own hop (QUANTRAC_FUSED_STAGES=false).
HOPS = (topics.VALID, topics.CORRECTED)


def true_end_offsets(bootstrap: str, names: Iterable[str]) -> dict[TopicPartition, int]:
    """The offset after the last record of every partition of ``names``."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        ends: dict[TopicPartition, int] = dict(consumer.end_offsets(tps))
        tail = [tp for tp, end in ends.items() if end > 0]
        if tail:
            consumer.assign(tail)
            for tp in tail:
                consumer.seek(tp, ends[tp] - 1)
            while batch := consumer.poll(timeout_ms=300):
                for tp, records in batch.items():
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
        return ends
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    finally:
        admin.close()


def behind(settings: Settings) -> dict[TopicPartition, int]:
    """Records per input partition the worker group has not committed yet (empty: drained).

    Committed offsets are read *before* the ends: whatever a committed input produced was
    confirmed before its commit, so it is inside the ends read afterwards."""
    bootstrap = bootstrap_servers(settings)
    committed = committed_offsets(bootstrap, settings.app_id)
    inputs = INPUTS if settings.fused_stages else INPUTS + HOPS
    ends = true_end_offsets(bootstrap, [settings.topic(t.name) for t in inputs])
    return {
        tp: end - committed.get(tp, 0) for tp, end in ends.items() if committed.get(tp, 0) < end
    }


def wait_drained(settings: Settings, timeout: float, log: Callable[[], str] = str) -> None:
    """Until the worker group has committed every record of every input topic."""
    deadline = time.monotonic() + timeout
    left: dict[TopicPartition, int] = {}
    while time.monotonic() < deadline:
        left = behind(settings)
        if not left:
            return
        time.sleep(0.5)
    raise AssertionError(f"not drained after {timeout}s, behind: {left}: {log()}")

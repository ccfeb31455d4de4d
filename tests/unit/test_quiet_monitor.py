"""streams/app.py's QuietMonitor: Faust's Prometheus monitor without its per-item hooks, and
with what the worker's own metrics read from it (the offsets behind quantrac_consumer_lag)."""

from __future__ import annotations

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.app import QuietMonitor

RAW = TP("readings.raw", 0)


class Message:
    """What Faust's monitor stamps on a message coming in."""

    time_in: float | None = None


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_per_message_hooks_count_nothing_but_offsets_and_commits_are_kept() -> None:
    registry = CollectorRegistry()
    quiet = QuietMonitor(metrics=FaustMetrics.create(registry, "faust"))
    quiet.on_message_in(RAW, 3, Message())
    quiet.on_table_get(None, "k")
    assert quiet.messages_received_total == 0
    assert _sample(registry, "faust_messages_received_total") == 0
    quiet.on_tp_commit({RAW: 5})
    quiet.track_tp_end_offset(RAW, 10)
    assert quiet.tp_committed_offsets == {RAW: 5} and quiet.tp_end_offsets == {RAW: 10}
    committed = "faust_topic_partition_offset_commited"  # Faust's spelling
    assert _sample(registry, committed, topic=RAW.topic, partition="0") == 5


def test_the_full_monitor_counts_every_message() -> None:
    # QUANTRAC_FAUST_EVENT_METRICS=true: Faust's own monitor, each message counted
    registry = CollectorRegistry()
    full = PrometheusMonitor(metrics=FaustMetrics.create(registry, "faust"))
    full.on_message_in(RAW, 3, Message())  # type: ignore[arg-type]
    assert full.messages_received_total == 1
    assert _sample(registry, "faust_messages_received_total") == 1


def test_the_end_offset_gauge_follows_each_fetch_without_a_lookup_per_message() -> None:
    registry = CollectorRegistry()
    quiet = QuietMonitor(metrics=FaustMetrics.create(registry, "faust"))
    gauge = quiet._metrics.topic_partition_end_offset
    looked_up: list[dict[str, object]] = []
    labels = gauge.labels

    def counting(**kw: object) -> object:
        looked_up.append(kw)
        return labels(**kw)

    gauge.labels = counting  # type: ignore[method-assign,assignment]
    for offset in (10, 10, 10, 12, 12):  # a fetch's messages share its end offset
        quiet.track_tp_end_offset(RAW, offset)
    end = "faust_topic_partition_end_offset"
    assert _sample(registry, end, topic=RAW.topic, partition="0") == 12
    assert quiet.tp_end_offsets == {RAW: 12}
    assert len(looked_up) == 2

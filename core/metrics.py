"""Every Prometheus metric quantrac exports, declared in one place with a description each.

``Metrics(registry)`` takes an injectable registry so tests get a fresh one; processes use the
default registry, served on ``/metrics``. Label sets are bounded (sources × known parameters) and
initialised up front where the registry is known. The catalogue is in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from core.records import QcFlag

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.readings_received = Counter(
            "quantrac_readings_received_total",
            "Readings received by the gateway, by channel and outcome (accepted/rejected).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.rejections = Counter(
            "quantrac_rejections_total",
            "Inputs dead-lettered, by channel and reason code.",
            ["channel", "reason"],
            registry=registry,
        )
        self.gateway_publish_failures = Counter(
            "quantrac_gateway_publish_failures_total",
            "Deliveries the broker did not acknowledge in time, by channel; the sender was not "
            "acknowledged (FTP 451, HTTP 503, MQTT retried), so it is sent again.",
            ["channel"],
            registry=registry,
        )
        self.gateway_archive_failures = Counter(
            "quantrac_gateway_archive_failures_total",
            "Deliveries the gateway could not archive (disk full, permissions), by channel; "
            "nothing was published and the sender was not acknowledged.",
            ["channel"],
            registry=registry,
        )
        self.tls_refusals = Counter(
            "quantrac_tls_refusals_total",
            "Gateway connections refused for TLS: plain_login, plain_data (FTPS required), "
            "handshake_failed.",
            ["channel", "reason"],
            registry=registry,
        )
        self.console_logins = Counter(
            "quantrac_console_logins_total",
            "Console login attempts by result: ok, bad_credentials, throttled (HTTP 429), "
            "malformed (username or password refused before any query, HTTP 400).",
            ["result"],
            registry=registry,
        )
        self.qc_flags = Counter(
            "quantrac_qc_flags_total",
            "Readings judged by the validate agent, by parameter and QC flag.",
            ["parameter", "flag"],
            registry=registry,
        )
        self.last_reading = Gauge(
            "quantrac_source_last_reading_timestamp_seconds",
            "Unix time of the newest reading measured at each source.",
            ["source_id"],
            registry=registry,
        )
        self.completeness_today = Gauge(
            "quantrac_source_completeness_today_ratio",
            "Share of today's (local day) expected readings received valid, per source.",
            ["source_id"],
            registry=registry,
        )
        self.averages_emitted = Counter(
            "quantrac_averages_emitted_total",
            "Averages emitted, by period and validity.",
            ["period", "valid"],
            registry=registry,
        )
        self.violation_events = Counter(
            "quantrac_violation_events_total",
            "Violation events emitted, by event kind and severity.",
            ["event", "severity"],
            registry=registry,
        )
        self.violations_open = Gauge(
            "quantrac_violations_open",
            "Open violations (and outages), by source and severity.",
            ["source_id", "severity"],
            registry=registry,
        )
        self.violations_unacknowledged_age = Gauge(
            "quantrac_violations_unacknowledged_oldest_age_seconds",
            "Age of the oldest open violation nobody has acknowledged, by source and severity "
            "(0 when none). Set by the console from the database.",
            ["source_id", "severity"],
            registry=registry,
        )
        self.consumer_reseeks = Counter(
            "quantrac_consumer_reseeks_total",
            "Partitions sought back to their committed offset because the message there was "
            "never acked while later ones were (streams/consumer.py); each is re-delivered.",
            ["topic"],
            registry=registry,
        )
        self.assigned_share = Gauge(
            "quantrac_worker_readings_share",
            "Share (0..1) of the registry's readings, at its cadences, on the readings.raw "
            "partitions this worker is active for; set at each rebalance (streams/balance.py). "
            "Workers of one group sum to 1; an uneven split bounds what a second worker adds.",
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "quantrac_worker_active_partitions",
            "readings.raw partitions this worker is active for, set at each rebalance.",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "quantrac_consumer_lag_messages",
            "Messages between a partition's end (from fetch responses) and the worker's committed "
            "offset, per assigned topic partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.latency = Histogram(
            "quantrac_pipeline_latency_seconds",
            "Seconds from a delivery's arrival (received_at) to a pipeline stage, once per"
            " delivery and stage (a violation: from the end of its window).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.db_batch_rows = Histogram(
            "quantrac_db_batch_rows",
            "Rows per database batch, by table.",
            ["table"],
            buckets=(1, 10, 100, 500, 1000, 5000, 10000, 50000),
            registry=registry,
        )
        self.db_write_seconds = Histogram(
            "quantrac_db_write_seconds",
            "Seconds to commit one database batch, by table.",
            ["table"],
            registry=registry,
        )
        self.db_write_errors = Counter(
            "quantrac_db_write_errors_total",
            "Failed database batch attempts (each is retried), by table.",
            ["table"],
            registry=registry,
        )
        self.processing_errors = Counter(
            "quantrac_processing_errors_total",
            "Records a worker stage could not decode, process or store, by stage (agent) and "
            "error (json_schema, processing_error, storage_error); each was dead-lettered to "
            "readings.rejected and the stream went on (streams/errors.py).",
            ["stage", "error"],
            registry=registry,
        )
        # Forwarding to downstream receivers (streams/forwarding.py, issue 20)
        self.forward_queued = Gauge(
            "quantrac_forward_queued_files",
            "Archived files waiting for delivery to a destination (from the delivery ledger).",
            ["destination"],
            registry=registry,
        )
        self.forward_failed = Gauge(
            "quantrac_forward_failed_files",
            "Files a destination refused max_refusals times, set aside until `quantrac forward "
            "retry` (from the delivery ledger).",
            ["destination"],
            registry=registry,
        )
        self.forward_oldest_age = Gauge(
            "quantrac_forward_oldest_queued_age_seconds",
            "Seconds since the oldest file still waiting for a destination was archived (0 when "
            "none waits).",
            ["destination"],
            registry=registry,
        )
        self.forward_delivered = Counter(
            "quantrac_forward_delivered_total",
            "Files delivered to a destination by this forwarder process, by whether the receiver "
            "already had them (already: true after a crash between sending and recording).",
            ["destination", "already"],
            registry=registry,
        )
        self.forward_attempt_failures = Counter(
            "quantrac_forward_attempt_failures_total",
            "Failed delivery attempts, by destination and kind: transient (retried with "
            "backoff), refused (the receiver refused the file), missing (the archived file is "
            "gone or changed).",
            ["destination", "kind"],
            registry=registry,
        )
        # Notifications (notify/, `quantrac notify`, issue 21)
        self.notifications = Counter(
            "quantrac_notifications_total",
            "Notification delivery attempts by channel type (email, webhook, file) and outcome: "
            "sent (confirmed), retry (failed, due again with backoff), failed (given up after "
            "QUANTRAC_NOTIFY_MAX_ATTEMPTS), cancelled (an escalation acknowledged meanwhile).",
            ["channel_type", "outcome"],
            registry=registry,
        )
        self.notifications_planned = Counter(
            "quantrac_notifications_planned_total",
            "Violation events × routes by what the route did: send (the episode's message), "
            "group (an episode inside the rate-limit window, logged, not sent), fold (a later "
            "event of an announced episode), close, skip; and escalation (queued).",
            ["action"],
            registry=registry,
        )
        self.notifications_pending = Gauge(
            "quantrac_notifications_pending",
            "Deliveries waiting to be sent or retried (from the delivery log).",
            registry=registry,
        )

    def init_sources(self, source_ids: Iterable[str], parameters: Iterable[str] = ()) -> None:
        """Create every bounded label set up front, so a series exists before its first event."""
        ids = list(source_ids)
        for sid in ids:
            self.last_reading.labels(sid)
            self.completeness_today.labels(sid)
        for parameter in parameters:
            for flag in QcFlag:
                self.qc_flags.labels(parameter, flag.value)

    def set_violation_state(
        self,
        source_ids: Iterable[str],
        open_counts: Mapping[tuple[str, str], int],
        unacknowledged_age_s: Mapping[tuple[str, str], float],
        severities: Iterable[str],
    ) -> None:
        """Replace the open-violation gauges with the database's view (every source × band)."""
        bands = list(severities)
        for sid in source_ids:
            for sev in bands:
                self.violations_open.labels(sid, sev).set(open_counts.get((sid, sev), 0))
                self.violations_unacknowledged_age.labels(sid, sev).set(
                    unacknowledged_age_s.get((sid, sev), 0.0)
                )

    def set_completeness(self, ratios: Mapping[str, float]) -> None:
        for sid, ratio in ratios.items():
            self.completeness_today.labels(sid).set(ratio)

    def set_last_readings(self, last: Mapping[str, float]) -> None:
        for sid, ts in last.items():
            self.last_reading.labels(sid).set(ts)

    def on_db_write(self, table: str, rows: int, seconds: float) -> None:
        self.db_batch_rows.labels(table).observe(rows)
        self.db_write_seconds.labels(table).observe(seconds)

    def on_db_error(self, table: str, exc: BaseException) -> None:
        self.db_write_errors.labels(table).inc()


class FaustSensors:
    """Faust's own Prometheus sensors, collected through our registry with lint-clean names.

    Faust's ``…_runtime_ms`` histogram is in milliseconds; promtool (and Prometheus practice)
    want base units, so it leaves as ``…_runtime_seconds`` with its sum and bucket bounds
    divided by 1000.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.source = CollectorRegistry(auto_describe=True)
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            if family.name.endswith("_ms"):
                family.name = family.name[: -len("_ms")] + "_seconds"
                family.samples = [_ms_to_seconds(s) for s in family.samples]
            yield family


def _ms_to_seconds(sample: Sample) -> Sample:
    name = sample.name.replace("_ms_", "_seconds_").replace("_ms", "_seconds")
    labels = dict(sample.labels)
    if "le" in labels and labels["le"] != "+Inf":
        labels["le"] = repr(float(labels["le"]) / 1000)
    value = sample.value / 1000 if name.endswith("_sum") else sample.value
    return sample._replace(name=name, labels=labels, value=value)

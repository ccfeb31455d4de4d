"""The worker's topics and state tables, declared on one Faust app, and where a record goes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from core import topics
from core.records import (
    AqiRecord,
    Average,
    ManualHour,
    QcBatch,
    QcReading,
    Rejection,
    Tick,
    ViolationEvent,
    WaterQualityDay,
)
from core.settings import Settings
from streams.batch import CODEC
from streams.errors import RecordSchema
from streams.runner import Output


@dataclass(frozen=True)
class Topics:
    raw: Any  # bytes: the validate stage decodes them and dead-letters what is not a RawBatch
    valid: Any  # bytes: QcBatch is a plain dataclass with its own codec (core/records.py)
    rejected: Any
    averages: Any
    corrected: Any  # stacks' averages at their reference O2 (thresholds/reference_o2.py)
    judged: Any  # averages + corrected: what the threshold check reads
    violations: Any
    aqi: Any
    water: Any
    ticks: Any

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> Topics:
        def raw(spec: topics.TopicSpec) -> Any:
            return app.topic(
                settings.topic(spec.name),
                value_type=bytes,
                value_serializer="raw",
                partitions=settings.topic_partitions,
            )

        def typed(value_type: type[faust.Record], *specs: topics.TopicSpec) -> Any:
            # RecordSchema: a value that is not the record arrives as Undecodable
            return app.topic(
                *(settings.topic(spec.name) for spec in specs),
                schema=RecordSchema(value_type),
                partitions=settings.topic_partitions,
            )

        return cls(
            raw=raw(topics.RAW),
            valid=raw(topics.VALID),
            rejected=typed(Rejection, topics.REJECTED),
            averages=typed(Average, topics.AVERAGES),
            corrected=typed(Average, topics.CORRECTED),
            judged=typed(Average, topics.AVERAGES, topics.CORRECTED),
            violations=typed(ViolationEvent, topics.VIOLATIONS),
            aqi=typed(AqiRecord, topics.AQI),
            water=typed(WaterQualityDay, topics.WATER_QUALITY),
            ticks=typed(Tick, topics.TICKS),
        )

    def route(self, out: Output) -> tuple[Any, str, Any] | None:
        """An output's topic, key and value: every topic is keyed by source id, but
        ``violations`` (by violation id); a dead letter without a source keeps its input's key."""
        r = out.record
        if isinstance(r, Rejection):
            key = r.source_id or (
                str(out.event.key or b"", "utf-8", "replace") if out.event else ""
            )
            return self.rejected, key, r
        if isinstance(r, QcBatch):
            return self.valid, r.source_id, r.dumps()
        if isinstance(r, QcReading | ManualHour):
            return None  # sent in its QcBatch
        if isinstance(r, ViolationEvent):
            return self.violations, r.violation_id, r
        if isinstance(r, Average):
            return self.averages, r.source_id, r
        if isinstance(r, AqiRecord):
            return self.aqi, r.source_id, r
        if isinstance(r, WaterQualityDay):
            return self.water, r.source_id, r
        raise TypeError(f"no topic for {type(r).__name__}")


@dataclass(frozen=True)
class Tables:
    """State per key, co-partitioned with the topics keyed by source id (streams/batch.py)."""

    qc: Any  # "source|parameter" -> SeriesState
    windows: Any  # "source|parameter" -> SeriesWindows
    last_valid: Any  # source -> epoch s of the newest valid reading
    rules: Any  # "source|rule id" -> RuleState
    corrections: Any  # stack -> CorrectionState (pollutant windows waiting for their O2)
    outages: Any  # source -> OutageState
    aqi: Any  # air station -> StationAqi
    water: Any  # surface-water station -> StationDays

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> Tables:
        def table(name: str) -> Any:
            t: Any = app.Table(name, default=None, partitions=settings.topic_partitions)
            # streams/batch.py encodes committed values with the codec the changelog carries
            assert t.value_serializer == CODEC, t.value_serializer
            return t

        return cls(
            qc=table("qc_state"),
            windows=table("window_state"),
            last_valid=table("last_valid"),
            rules=table("rule_state"),
            corrections=table("o2_correction_state"),
            outages=table("outage_state"),
            aqi=table("aqi_state"),
            water=table("water_state"),
        )

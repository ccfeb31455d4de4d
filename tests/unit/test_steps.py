"""The stages' pure steps (thresholds/steps.py) with plain values: no broker, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.records import Average, QcFlag, QcReading, Tick
from thresholds import steps
from thresholds.windows import SeriesWindows

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 08:00 local


def reading(minute: int, value: float, position: int, flag: str = QcFlag.VALID) -> QcReading:
    t = T0 + timedelta(minutes=minute)
    return QcReading(
        source_id="HD-KK-01",
        parameter="PM2.5",
        value=value,
        unit="µg/m³",
        measured_at=t,
        status="00",
        received_at=t,
        channel="ftp",
        origin="f.txt",
        flag=flag,
        raw_value=value,
        raw_unit="µg/m³",
        position=position,
    )


def test_average_closes_an_hour_once_and_ignores_copies_and_flagged_readings() -> None:
    w = SeriesWindows("PM2.5", 300.0)
    hour = [reading(5 * i, 10.0, 1024 * i) for i in range(12)]
    w, out = steps.average(w, hour)
    # no window closed; one note that the running hour changed, made into its partial mean
    # once per batch from the state (streams/stages.py): 12 samples of 10
    assert out == [steps.RunningHour("HD-KK-01", "PM2.5", "µg/m³")]
    partial = steps.running(out[0], w)
    assert (partial.final, partial.value, partial.samples, partial.window_start) == (
        False,
        10.0,
        12,
        T0,
    )
    # a re-emitted copy (same position) and a flagged reading change nothing
    again, out = steps.average(w, [hour[-1], reading(59, 999.0, 20_000, QcFlag.SPIKE)])
    assert out == [] and again.hours[int(T0.timestamp())] == (120.0, 12)
    # the next hour's first reading closes the first: one final 1-h mean of 10 over 12 samples
    _, out = steps.average(w, [reading(60, 30.0, 1024 * 12)])
    finals = [a for a in out if isinstance(a, Average) and a.final and a.period == "1h"]
    assert [(a.value, a.samples, a.valid) for a in finals] == [(10.0, 12, True)]


def test_outages_open_after_the_allowance_and_close_on_data() -> None:
    tick = Tick(source_id="HD-KK-01", at=T0)
    allowance = timedelta(minutes=15)
    state, out = steps.outages(
        None, [steps.OutageCheck(tick, T0 - timedelta(minutes=10), allowance)]
    )
    assert out == []
    later = Tick(source_id="HD-KK-01", at=T0 + timedelta(minutes=10))
    state, out = steps.outages(
        state, [steps.OutageCheck(later, T0 - timedelta(minutes=10), allowance)]
    )
    assert [e.event for e in out] == ["outage_opened"]
    back = Tick(source_id="HD-KK-01", at=T0 + timedelta(minutes=12))
    _, out = steps.outages(state, [steps.OutageCheck(back, T0 + timedelta(minutes=11), allowance)])
    assert [e.event for e in out] == ["outage_closed"]

"""Manual validation's pure parts (issue 21): the invalid periods of a series
(thresholds/manual.py), what a decision changes, and the windows it revises (each once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.records import Average, ManualHour, ManualValidation, QcFlag, QcReading
from streams.validate import Mark, revalidate
from thresholds import steps
from thresholds.manual import ManualPeriods
from thresholds.qc import SeriesState
from thresholds.windows import SeriesWindows

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 08:00 local
H = 3600


def test_invalidating_twice_changes_nothing_the_second_time() -> None:
    m = ManualPeriods()
    assert m.invalidate(0, 100, 1) == [(0, 100)]
    assert m.invalidate(0, 100, 2) == []
    assert m.in_force(50) == 2 and m.in_force(100) is None  # half-open, the newest decision


def test_an_overlapping_invalidation_changes_only_its_new_part() -> None:
    m = ManualPeriods()
    m.invalidate(100, 200, 1)
    assert m.invalidate(50, 250, 2) == [(50, 100), (200, 250)]
    assert m.spans == [[50, 250, 2]]


def test_a_restore_gives_back_only_what_was_invalid() -> None:
    m = ManualPeriods()
    m.invalidate(100, 200, 1)
    m.invalidate(300, 400, 2)
    assert m.restore(150, 350) == [(150, 200, 1), (300, 350, 2)]
    assert m.spans == [[100, 150, 1], [350, 400, 2]]
    assert m.restore(150, 350) == []  # restoring again changes nothing


def test_periods_older_than_the_horizon_are_forgotten() -> None:
    m = ManualPeriods([[0, 10, 1], [20, 30, 2]])
    m.forget_before(10)
    assert m.spans == [[20, 30, 2]]


def test_series_state_keeps_its_periods_through_the_changelog() -> None:
    state = SeriesState()
    state.manual.invalidate(0, 3600, 7)
    again = SeriesState.from_dict(state.to_dict())
    assert again.manual.spans == [[0, 3600, 7]]
    assert "manual" not in SeriesState().to_dict()  # nothing written for the usual series


def decision(action: str, start: datetime, end: datetime, vid: int = 1) -> Mark:
    v = ManualValidation(
        vid, "HD-KK-01", "PM2.5", start, end, action, "maintenance", "", "op", start
    )
    return Mark(v, "PM2.5")


def test_a_decision_says_what_it_changed_and_labels_the_series() -> None:
    state = SeriesState()
    r = revalidate(state, decision("invalidate", T0, T0 + timedelta(hours=1)), 5)
    assert r.withdraws and r.manual_id == 1 and r.spans == ((T0, T0 + timedelta(hours=1)),)
    assert state.manual.in_force(int(T0.timestamp()) + 60) == 1
    r = revalidate(state, decision("restore", T0, T0 + timedelta(hours=2), 2), 6)
    assert not r.withdraws and r.manual_id is None
    assert r.spans == ((T0, T0 + timedelta(hours=1)),)  # only the part that was invalid


def reading(minute: int, value: float, position: int, manual_id: int | None = None) -> QcReading:
    t = T0 + timedelta(minutes=minute)
    return QcReading(
        "HD-KK-01", "PM2.5", value, "µg/m³", t, "00", t, "ftp", "f.txt",
        QcFlag.VALID, value, "µg/m³", position, None, manual_id,
    )  # fmt: skip


def finals(out: list[Any]) -> list[Average]:
    """A step's final means (not its note that the running hour changed)."""
    return [a for a in out if isinstance(a, Average) and a.final]


def hour(start: datetime, total: float, n: int, position: int) -> ManualHour:
    return ManualHour("HD-KK-01", "PM2.5", "µg/m³", start, total, n, position)


def test_withdrawn_hours_revise_each_window_once_and_restore_brings_them_back() -> None:
    w = SeriesWindows("PM2.5", 300.0)
    # three hours of 12 readings of 10, 100 (the faulty one), 10; then the 4th hour opens
    values = [10.0, 100.0, 10.0]
    items = [
        reading(60 * h + 5 * i, values[h], 1024 * (12 * h + i)) for h in range(3) for i in range(12)
    ]
    w, _ = steps.average(w, items)
    w, out = steps.average(w, [reading(180, 10.0, 1024 * 40)])
    assert [a.value for a in finals(out) if a.period == "1h"] == [10.0]
    # withdraw the faulty hour: its 1-h mean is empty (not valid), and every final window that
    # contains it is revised exactly once
    h1 = T0 + timedelta(hours=1)
    w, out = steps.average(w, [hour(h1, -1200.0, -12, 1024 * 41)])
    revised = finals(out)
    assert len({(a.period, a.window_start) for a in revised}) == len(revised)
    one_h = [a for a in revised if a.period == "1h"]
    assert [(a.window_start, a.value, a.samples, a.valid, a.revision) for a in one_h] == [
        (h1, None, 0, False, 1)
    ]
    # the same decision delivered again (a crash before the commit) changes nothing
    again, out = steps.average(w, [hour(h1, -1200.0, -12, 1024 * 41)])
    assert out == [] and again.hours.stat(int(h1.timestamp())) == (0.0, 0)
    # restored: the hour's mean is back, one revision higher
    w, out = steps.average(w, [hour(h1, 1200.0, 12, 1024 * 42)])
    one_h = [a for a in finals(out) if a.period == "1h"]
    assert [(a.value, a.samples, a.revision) for a in one_h] == [(100.0, 12, 2)]


def test_a_reading_labelled_invalid_on_arrival_is_not_averaged() -> None:
    w = SeriesWindows("PM2.5", 300.0)
    w, out = steps.average(w, [reading(0, 10.0, 1, manual_id=3)])
    assert out == [] and w.hours == {}


def test_restored_readings_the_windows_never_saw_advance_them() -> None:
    w = SeriesWindows("PM2.5", 300.0)
    w, _ = steps.average(w, [reading(0, 10.0, 1)])
    # an hour that arrived while invalid (never averaged), then restored
    later = T0 + timedelta(hours=2)
    w, out = steps.average(w, [hour(later, 120.0, 12, 1024 * 5)])
    assert w.watermark == int(later.timestamp())
    assert [a.window_start for a in finals(out) if a.period == "1h"] == [
        T0,
        T0 + timedelta(hours=1),
    ]

"""When monthly reports are due (reports/schedule.py): month boundaries on the local clock
(Asia/Ho_Chi_Minh, UTC+7), catch-up after downtime, idempotence against what is stored."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from reports.model import ReportKind
from reports.schedule import (
    Run,
    Schedule,
    Subject,
    due_months,
    due_runs,
    last_due_month,
    next_run,
)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
AT6 = Schedule(hour=6, tz=TZ, catch_up_months=1)
C, A = ReportKind.COMPLIANCE, ReportKind.AIR_QUALITY


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_due_from_the_first_at_the_local_hour_not_utc() -> None:
    # 1 Nov 05:59 local is 31 Oct 22:59 UTC: October is not due yet, September is
    assert last_due_month(utc(2026, 10, 31, 22, 59), AT6) == date(2026, 9, 1)
    # 1 Nov 06:00 local is 31 Oct 23:00 UTC, still October in UTC: October is due
    assert last_due_month(utc(2026, 10, 31, 23, 0), AT6) == date(2026, 10, 1)
    # mid-month: the previous month
    assert last_due_month(utc(2026, 11, 15, 12), AT6) == date(2026, 10, 1)


def test_midnight_hour_and_year_boundary() -> None:
    midnight = Schedule(hour=0, tz=TZ, catch_up_months=1)
    # 1 Jan 2027 00:00 local = 31 Dec 2026 17:00 UTC: December 2026 is due
    assert last_due_month(utc(2026, 12, 31, 17, 0), midnight) == date(2026, 12, 1)
    assert last_due_month(utc(2026, 12, 31, 16, 59), midnight) == date(2026, 11, 1)
    # January at 06:00: December of the previous year until then, November before
    assert last_due_month(utc(2026, 12, 31, 22, 59), AT6) == date(2026, 11, 1)
    assert last_due_month(utc(2026, 12, 31, 23, 0), AT6) == date(2026, 12, 1)


def test_next_run() -> None:
    assert next_run(utc(2026, 10, 31, 22, 59), AT6) == datetime(2026, 11, 1, 6, tzinfo=TZ)
    assert next_run(utc(2026, 10, 31, 23, 0), AT6) == datetime(2026, 12, 1, 6, tzinfo=TZ)
    assert next_run(utc(2026, 12, 15), AT6) == datetime(2027, 1, 1, 6, tzinfo=TZ)


def test_catch_up_window_spans_years() -> None:
    s = Schedule(hour=6, tz=TZ, catch_up_months=3)
    assert due_months(utc(2027, 1, 10), s) == [
        date(2026, 10, 1),
        date(2026, 11, 1),
        date(2026, 12, 1),
    ]


SUBJECTS = [
    Subject(C, "HD-NT-01", date(2020, 1, 1), "F1"),
    Subject(A, "HD-KK-01", date(2026, 11, 20)),  # installed in November
]


def test_catch_up_after_downtime_and_nothing_twice() -> None:
    s = Schedule(hour=6, tz=TZ, catch_up_months=3)
    now = utc(2027, 1, 2)  # down since October: October, November, December are missed
    runs = due_runs(now, s, SUBJECTS, stored=set())
    assert runs == [
        Run("2026-10", C, "HD-NT-01", "F1"),
        Run("2026-11", A, "HD-KK-01"),  # the month it was installed in counts
        Run("2026-11", C, "HD-NT-01", "F1"),
        Run("2026-12", A, "HD-KK-01"),
        Run("2026-12", C, "HD-NT-01", "F1"),
    ]
    stored = {r.key for r in runs}
    assert due_runs(now, s, SUBJECTS, stored) == []
    # the next month adds exactly its own reports
    later = due_runs(utc(2027, 2, 1, 0), s, SUBJECTS, stored)
    assert later == [Run("2027-01", A, "HD-KK-01"), Run("2027-01", C, "HD-NT-01", "F1")]


def test_bad_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="hour 24"):
        Schedule(hour=24, tz=TZ, catch_up_months=1)
    with pytest.raises(ValueError, match="at least 1"):
        Schedule(hour=6, tz=TZ, catch_up_months=0)

"""When monthly reports are due: pure functions of the clock, the schedule and what is stored.

A month's reports are due from the first day of the next month at ``hour`` local time (the
department's clock, Asia/Ho_Chi_Minh). A scheduler that was down catches up: every month from
the last due one back ``catch_up_months`` months is due unless already stored, so a restart after
downtime fills the gap and a second run adds nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from reports.model import ReportKind

# The scheduled kinds: a facility's compliance per emission source, a station's quality
# (air quality: VN_AQI and QCVN 05:2023; surface water: class and VN_WQI) per ambient station.
SCHEDULED_KINDS = (ReportKind.COMPLIANCE, ReportKind.AIR_QUALITY)


@dataclass(frozen=True)
class Schedule:
    hour: int  # local hour of the first day of the month
    tz: ZoneInfo
    catch_up_months: int  # how many months back a run looks (the last due one included)

    def __post_init__(self) -> None:
        if not 0 <= self.hour <= 23:
            raise ValueError(f"schedule hour {self.hour}: want 0..23")
        if self.catch_up_months < 1:
            raise ValueError(f"catch-up {self.catch_up_months} months: want at least 1")


@dataclass(frozen=True)
class Subject:
    """Something a monthly report is about: a source id, its kind of report, since when."""

    kind: ReportKind
    source_id: str
    installed: date
    facility: str | None = None


@dataclass(frozen=True, order=True)
class Run:
    period: str  # YYYY-MM, local
    kind: ReportKind
    subject: str
    facility: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind.value, self.subject, self.period)


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _previous_month(first: date) -> date:
    return _month_start(first - timedelta(days=1))


def _next_month(first: date) -> date:
    return _month_start(first + timedelta(days=31))


def run_at(month: date, schedule: Schedule) -> datetime:
    """When ``month``'s reports become due: the next month's first day at the hour, local."""
    return datetime.combine(_next_month(_month_start(month)), time(schedule.hour), schedule.tz)


def last_due_month(now: datetime, schedule: Schedule) -> date:
    """The latest month (its first day) whose reports are due at ``now`` (aware)."""
    local = now.astimezone(schedule.tz)
    this_month = local.date().replace(day=1)
    previous = _previous_month(this_month)
    return previous if local >= run_at(previous, schedule) else _previous_month(previous)


def due_months(now: datetime, schedule: Schedule) -> list[date]:
    """The months a run at ``now`` looks at, oldest first (the catch-up window)."""
    months = [last_due_month(now, schedule)]
    while len(months) < schedule.catch_up_months:
        months.append(_previous_month(months[-1]))
    return months[::-1]


def next_run(now: datetime, schedule: Schedule) -> datetime:
    """The next time reports become due after ``now``."""
    return run_at(_next_month(last_due_month(now, schedule)), schedule)


def due_runs(
    now: datetime,
    schedule: Schedule,
    subjects: Iterable[Subject],
    stored: Collection[tuple[str, str, str]],
) -> list[Run]:
    """Every (kind, subject, month) due at ``now`` and not in ``stored`` (keys as Run.key), in
    month order; a month that ended before the source was installed is not due."""
    runs = []
    for month in due_months(now, schedule):
        for s in subjects:
            if _next_month(month) <= s.installed:
                continue
            run = Run(month.strftime("%Y-%m"), s.kind, s.source_id, s.facility)
            if run.key not in stored:
                runs.append(run)
    return sorted(runs)

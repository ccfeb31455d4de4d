"""Report periods: "2026-10", "2026-Q3", "2026", "2026-10-05", "2026-10-01..2026-10-15".

A period is a half-open interval of local calendar time (Asia/Ho_Chi_Minh by default) — the way a
regulator counts months and days — carried as aware datetimes, UTC for SQL. Date ranges are
inclusive of both days as written ("1..15" means up to the end of the 15th).

A well-formed period is then checked against what can be reported (:func:`check_bounds`,
:func:`check_regulations`): not wholly before the data's first year (the registry's earliest
station installation) or after the current year, not longer than the report kind's maximum
(``report_max_days``, ``export_max_days``), and not outside the dates the source's regulations
apply. Each refusal is a :class:`PeriodOutOfRange` with a message saying which bound (HTTP 400,
CLI exit 2), never a failure deeper in a report builder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from thresholds.catalogue import Regulation


class PeriodError(ValueError):
    """A period text that cannot be parsed; the message shows the accepted forms."""


class PeriodOutOfRange(PeriodError):
    """A well-formed period no report can be made for; the message names the bound."""


FORMS = "YYYY, YYYY-MM, YYYY-Qn, YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD"

_YEAR = re.compile(r"^(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class ReportPeriod:
    label: str  # as the user wrote it
    first_day: date  # local, inclusive
    last_day: date  # local, inclusive
    tz: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def start(self) -> datetime:
        """Local midnight starting ``first_day``, in UTC."""
        return datetime.combine(self.first_day, time(), self.zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """Local midnight after ``last_day`` (exclusive), in UTC."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), self.zone).astimezone(
            UTC
        )

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def clipped_end(self, now: datetime) -> datetime:
        """The end, or ``now`` if the period is still running (nothing is expected from later)."""
        return max(self.start, min(self.end, now))

    def months(self) -> list[ReportPeriod]:
        """The period cut at local month boundaries (for per-month outage accounting)."""
        out: list[ReportPeriod] = []
        day = self.first_day
        while day <= self.last_day:
            nxt = _month_after(day.replace(day=1))
            last = min(self.last_day, nxt - timedelta(days=1))
            out.append(ReportPeriod(day.strftime("%Y-%m"), day, last, self.tz))
            day = nxt
        return out

    def local_days(self) -> list[date]:
        return [self.first_day + timedelta(days=i) for i in range(self.days)]


def _month_after(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _day(text: str, whole: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"period {whole!r}: {text!r} is not a calendar date") from None


def parse_period(text: str, tz: str = "Asia/Ho_Chi_Minh") -> ReportPeriod:
    """Parse a period text into local calendar days; raises PeriodError naming the forms."""
    try:
        return _parse(text, tz)
    except PeriodError:
        raise
    except (ValueError, OverflowError) as exc:  # year 0000, or a month after 9999-12
        raise PeriodError(f"period {text!r}: {exc}") from None


def _parse(text: str, tz: str) -> ReportPeriod:
    s = text.strip()
    if m := _YEAR.match(s):
        y = int(m[1])
        return ReportPeriod(s, date(y, 1, 1), date(y, 12, 31), tz)
    if m := _MONTH.match(s):
        y, mo = int(m[1]), int(m[2])
        if not 1 <= mo <= 12:
            raise PeriodError(f"period {text!r}: month {mo} is not 01..12")
        first = date(y, mo, 1)
        return ReportPeriod(s, first, _month_after(first) - timedelta(days=1), tz)
    if m := _QUARTER.match(s):
        y, q = int(m[1]), int(m[2])
        first = date(y, 3 * q - 2, 1)
        last = _month_after(date(y, 3 * q, 1)) - timedelta(days=1)
        return ReportPeriod(s.upper(), first, last, tz)
    if m := _DAY.match(s):
        d = _day(m[1], text)
        return ReportPeriod(s, d, d, tz)
    if m := _RANGE.match(s):
        a, b = _day(m[1], text), _day(m[2], text)
        if b < a:
            raise PeriodError(f"period {text!r}: the range ends before it starts")
        return ReportPeriod(s, a, b, tz)
    raise PeriodError(f"period {text!r} not understood; use {FORMS}")


def check_bounds(
    period: ReportPeriod, *, first_year: int, today: date, max_days: int, setting: str
) -> None:
    """Refuse a period wholly outside the data's years or longer than ``max_days``.

    ``first_year``: the first year anything can have been measured; ``today``: the local date
    (a period starting after this year has no data yet); ``setting``: the option that sets
    ``max_days``, named in the message."""
    if period.last_day.year < first_year:
        raise PeriodOutOfRange(
            f"period {period.label!r} ends before {first_year}, the first year with data "
            "(the earliest station installation in the registry)"
        )
    if period.first_day.year > today.year:
        raise PeriodOutOfRange(
            f"period {period.label!r} starts after the current year ({today.year}): no data yet"
        )
    if period.days > max_days:
        raise PeriodOutOfRange(
            f"period {period.label!r} is {period.days} days; this report covers at most "
            f"{max_days} days ({setting}): ask for shorter periods"
        )


def check_regulations(
    period: ReportPeriod, source_id: str, regulations: Iterable[Regulation]
) -> None:
    """Refuse a period that starts before, or ends after, a regulation ``source_id`` is held to
    applies: its limits cannot be stated for those days (the report would have no basis)."""
    for reg in regulations:
        if reg.effective_from is not None and period.first_day < reg.effective_from:
            raise PeriodOutOfRange(
                f"period {period.label!r} starts before {reg.code} existed: {source_id} is held "
                f"to it from {reg.effective_from.isoformat()}; start the period on or after it"
            )
        if not reg.in_force(period.last_day):
            last = reg.last_day.isoformat() if reg.last_day else "its end"
            raise PeriodOutOfRange(
                f"period {period.label!r} ends after {reg.code}, which {source_id} is held "
                f"to, stopped applying ({last})"
            )

"""Per-station VN_AQI state: which hourly and daily AQI to (re)compute when an average arrives.

Pure. Keeps the valid hourly means of the six AQI pollutants and the PM NowCasts of the last
~two and a half days per ambient air station, keyed by the UTC hour start. Decision 1459/QĐ-TCMT:
hourly AQI from the 1-h means of the gases and the NowCast of PM; daily AQI over the local
calendar day (hours starting 00:00 … 23:00, the decision's 1:00 … 0:00 hour ends), computed by
``thresholds.aqi.day_aqi`` — the function ``quantrac aqi --daily`` uses too.

When a day's AQI is due (event time; the 1-h means of a station arrive when a newer reading of
their parameter closes them):

* a day is *closed* once the station holds a 1-h mean of the day's last hour (23:00) or later;
* closing a day that has data emits its daily AQI, and every later change to a closed day's hours
  emits it again (the ``aqi`` table keeps the last one: the writer upserts);
* a day without data gets no row. A correction that removes the last value of a closed day
  (which had a row) re-emits it with no AQI, so no stale value is left behind.
* a late value for a day whose hours (and the 7 O3 hours before it) are no longer all retained
  (``KEEP_HOURS``) does not recompute it: a partial recomputation would overwrite a correct row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from core.parameters import Parameter
from core.records import Period
from thresholds.aqi import (
    AQI_POLLUTANTS,
    PM,
    AqiResult,
    day_aqi,
    day_hour_starts,
    hourly_aqi,
    local_day,
)
from thresholds.averaging import LOCAL_TZ

HOUR = timedelta(hours=1)
KEEP_HOURS = 60
O3_HOURS_BEFORE = 7  # the O3 8-h means ending 00:00 … 06:00 reach into the previous day


@dataclass(frozen=True)
class AqiOut:
    kind: str  # "hourly" | "daily"
    window_start: datetime  # hour start, or the day's first hour start (00:00 local), UTC
    result: AqiResult


@dataclass
class StationAqi:
    hourly: dict[str, dict[int, float]] = field(default_factory=dict)  # param -> hour -> 1h
    nowcast: dict[str, dict[int, float]] = field(default_factory=dict)  # PM -> hour -> NowCast
    newest: int | None = None  # start (epoch s) of the newest 1-h mean seen, valid or not

    def to_dict(self) -> dict[str, Any]:
        def enc(d: dict[str, dict[int, float]]) -> dict[str, dict[str, float]]:
            return {p: {str(h): v for h, v in hs.items()} for p, hs in d.items()}

        return {"h": enc(self.hourly), "n": enc(self.nowcast), "w": self.newest}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StationAqi:
        def dec(x: dict[str, dict[str, float]]) -> dict[str, dict[int, float]]:
            return {p: {int(h): v for h, v in hs.items()} for p, hs in x.items()}

        state = cls(dec(d["h"]), dec(d["n"]), d.get("w"))
        if state.newest is None:  # state written before "w" existed
            state.newest = max((h for s in state.hourly.values() for h in s), default=None)
        return state

    def add(
        self, parameter: str, period: str, window_start: datetime, value: float | None, valid: bool
    ) -> list[AqiOut]:
        """Record a final 1-h mean or NowCast; return the AQIs it changes."""
        if parameter not in {p.value for p in AQI_POLLUTANTS}:
            return []
        if period not in (Period.HOUR.value, Period.NOWCAST.value):
            return []
        hour = int(window_start.timestamp())
        target = self.nowcast if period == Period.NOWCAST.value else self.hourly
        series = target.setdefault(parameter, {})
        removed = False
        if valid and value is not None:
            if not (math.isfinite(value) and value >= 0):  # refused before it enters the state
                raise ValueError(f"{parameter}: concentration must be a number >= 0, got {value}")
            series[hour] = value
        else:
            removed = series.pop(hour, None) is not None
        start = datetime.fromtimestamp(hour, UTC)
        out = [AqiOut("hourly", start, self.hourly_at(hour))]
        if period == Period.HOUR.value:
            previous = self.newest
            self.newest = hour if previous is None else max(previous, hour)
            retained = (self.newest if previous is None else previous) - KEEP_HOURS * 3600
            for day in self._days_due(start, previous, removed, retained):
                out.append(AqiOut("daily", day_hour_starts(day, LOCAL_TZ)[0], self.daily_for(day)))
        self._prune(max(hour, self.newest or hour))
        return out

    def _days_due(
        self, start: datetime, previous: int | None, removed: bool, retained: int
    ) -> list[date]:
        """Days whose daily AQI this 1-h mean (of the hour ``start``) changes or completes."""
        due: list[date] = []
        day = local_day(start, LOCAL_TZ)
        if previous is not None and int(start.timestamp()) > previous:
            # Only the day of the previous newest hour can hold data and still be open:
            # earlier days were closed by it, the days in between have no data.
            before = local_day(datetime.fromtimestamp(previous, UTC), LOCAL_TZ)
            if before < day and not self._closed(before, previous) and self._has_data(before):
                due.append(before)
        if self._closed(day, self.newest) and (self._has_data(day) or removed):
            due.append(day)
        # A day is recomputed only while its hours and the O3 hours before it are retained.
        return [d for d in due if self._first(d) - O3_HOURS_BEFORE * 3600 >= retained]

    @staticmethod
    def _first(day: date) -> int:
        return int(day_hour_starts(day, LOCAL_TZ)[0].timestamp())

    def _closed(self, day: date, newest: int | None) -> bool:
        return newest is not None and newest >= self._first(day) + 23 * 3600

    def _has_data(self, day: date) -> bool:
        first = self._first(day)
        return any(first <= h < first + 24 * 3600 for s in self.hourly.values() for h in s)

    def hourly_at(self, hour: int) -> AqiResult:
        inputs: dict[Parameter, float | None] = {}
        for p in AQI_POLLUTANTS:
            src = self.nowcast if p in PM else self.hourly
            inputs[p] = src.get(p.value, {}).get(hour)
        return hourly_aqi(inputs)

    def hourly_means(self) -> dict[datetime, dict[Parameter, float | None]]:
        """The retained valid 1-h means, keyed by the UTC hour start."""
        out: dict[datetime, dict[Parameter, float | None]] = {}
        for p, series in self.hourly.items():
            for h, v in series.items():
                out.setdefault(datetime.fromtimestamp(h, UTC), {})[Parameter(p)] = v
        return out

    def daily_for(self, day: date) -> AqiResult:
        """Daily AQI of a local calendar day (``thresholds.aqi.day_aqi``)."""
        return day_aqi(self.hourly_means(), day, LOCAL_TZ).result

    def _prune(self, newest: int) -> None:
        cutoff = newest - KEEP_HOURS * 3600
        for d in (self.hourly, self.nowcast):
            for p in d:
                d[p] = {h: v for h, v in d[p].items() if h >= cutoff}

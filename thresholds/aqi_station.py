"""Per-station VN_AQI state: which hourly and daily AQI to (re)compute when an average arrives.

Pure. Keeps the valid hourly means of the six AQI pollutants and the PM NowCasts of the last
~two days per ambient air station, keyed by the UTC hour start. Decision 1459/QĐ-TCMT:
hourly AQI from the 1-h means of the gases and the NowCast of PM; daily AQI over the VN_AQI
day, the 24 hours labelled 01:00 … 00:00 (the hour starting 00:00 closes the previous day).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from stations.parameters import Parameter
from streams.records import Period
from thresholds.aqi import AQI_POLLUTANTS, PM, AqiResult, daily_aqi, daily_stats, hourly_aqi
from thresholds.averaging import LOCAL_TZ

HOUR = timedelta(hours=1)
KEEP_HOURS = 60


def vn_day_start(hour_start: datetime) -> datetime:
    """UTC start of the first hour (01:00 local) of the VN_AQI day an hour belongs to."""
    local = hour_start.astimezone(LOCAL_TZ)
    first = (local - HOUR).replace(hour=1, minute=0, second=0, microsecond=0)
    return first.astimezone(UTC)


@dataclass(frozen=True)
class AqiOut:
    kind: str  # "hourly" | "daily"
    window_start: datetime  # hour start, or the VN_AQI day's first hour (01:00 local)
    result: AqiResult


@dataclass
class StationAqi:
    hourly: dict[str, dict[int, float]] = field(default_factory=dict)  # param -> hour -> 1h
    nowcast: dict[str, dict[int, float]] = field(default_factory=dict)  # PM -> hour -> NowCast
    threshold: float = 0.75

    def to_dict(self) -> dict[str, Any]:
        def enc(d: dict[str, dict[int, float]]) -> dict[str, dict[str, float]]:
            return {p: {str(h): v for h, v in hs.items()} for p, hs in d.items()}

        return {"h": enc(self.hourly), "n": enc(self.nowcast), "t": self.threshold}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StationAqi:
        def dec(x: dict[str, dict[str, float]]) -> dict[str, dict[int, float]]:
            return {p: {int(h): v for h, v in hs.items()} for p, hs in x.items()}

        return cls(dec(d["h"]), dec(d["n"]), d["t"])

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
        if valid and value is not None:
            series[hour] = value
        else:
            series.pop(hour, None)
        self._prune(hour)
        start = datetime.fromtimestamp(hour, UTC)
        out = [AqiOut("hourly", start, self.hourly_at(hour))]
        day = vn_day_start(start)
        # Daily AQI is due when the day's last hour closes, and again when a late value
        # changes a day whose last hour is already known.
        if start == day + 23 * HOUR or self._day_emitted(day):
            out.append(AqiOut("daily", day, self.daily_for(day)))
        return out

    def _day_emitted(self, day: datetime) -> bool:
        """A late value for a day whose last hour is already known re-computes that day."""
        last = int((day + 23 * HOUR).timestamp())
        return any(last in s for s in self.hourly.values())

    def hourly_at(self, hour: int) -> AqiResult:
        inputs: dict[Parameter, float | None] = {}
        for p in AQI_POLLUTANTS:
            src = self.nowcast if p in PM else self.hourly
            inputs[p] = src.get(p.value, {}).get(hour)
        return hourly_aqi(inputs)

    def daily_for(self, day: datetime) -> AqiResult:
        first = int(day.timestamp())
        hours = [first + 3600 * k for k in range(24)]
        day_hours = {
            p: [self.hourly.get(p.value, {}).get(h) for h in hours] for p in AQI_POLLUTANTS
        }
        o3 = self.hourly.get(Parameter.O3.value, {})
        before = [o3.get(first - 3600 * k) for k in range(7, 0, -1)]
        return daily_aqi(daily_stats(day_hours, before, self.threshold))

    def _prune(self, newest: int) -> None:
        cutoff = newest - KEEP_HOURS * 3600
        for d in (self.hourly, self.nowcast):
            for p in d:
                d[p] = {h: v for h, v in d[p].items() if h >= cutoff}

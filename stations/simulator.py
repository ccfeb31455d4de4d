"""Deterministic simulated feeds for the province's sources (values, not delivery).

``readings(series, start, end, seed)`` yields what the dataloggers would have measured: a diurnal
cycle, a weekly cycle for emission sources, noise, calibration windows (status 01) and short
device errors (02). Same seed, same readings: tests and benchmarks can rely on it.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.records import Channel, DeviceStatus, RawReading

LOCAL_OFFSET_H = 7  # Asia/Ho_Chi_Minh has no DST


@dataclass(frozen=True)
class Series:
    """One parameter at one source, as the simulator draws it."""

    source_id: str
    parameter: str
    unit: str
    interval_s: int
    base: float  # typical level
    amplitude: float  # diurnal swing, as a share of base
    noise: float  # standard deviation, as a share of base
    floor: float = 0.0


def _rng(seed: int, *parts: object) -> random.Random:
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def value_at(s: Series, t: datetime, seed: int) -> float:
    local_hour = (t.hour + LOCAL_OFFSET_H) % 24 + t.minute / 60
    diurnal = math.sin((local_hour - 8) / 24 * 2 * math.pi)  # peaks mid-afternoon
    rng = _rng(seed, s.source_id, s.parameter, int(t.timestamp()))
    v = s.base * (1 + s.amplitude * diurnal + rng.gauss(0, s.noise))
    return round(max(s.floor, v), 3)


def calibrating(t: datetime) -> bool:
    """The weekly calibration window: 02:00–02:30 local on Mondays (status 01 at every series)."""
    local = t + timedelta(hours=LOCAL_OFFSET_H)
    return local.weekday() == 0 and local.hour == 2 and local.minute < 30


def start_clear_of_calibration(latest: datetime, hours: int) -> datetime:
    """The latest whole hour at or before ``latest`` from which ``hours`` hours hold no
    calibration window (it starts on the hour). A plan that must see clear averages, a violation
    opening and then closing, cannot have half an hour of status 01 in it; on Sunday evenings
    UTC it otherwise would, for whole test runs."""
    start = latest.replace(minute=0, second=0, microsecond=0)
    while any(calibrating(start + timedelta(hours=h)) for h in range(hours)):
        start -= timedelta(hours=1)
    return start


def status_at(s: Series, t: datetime, seed: int) -> DeviceStatus:
    """Calibration 02:00–02:30 local on Mondays; a rare device error otherwise."""
    if calibrating(t):
        return DeviceStatus.CALIBRATING
    if _rng(seed, "err", s.source_id, s.parameter, int(t.timestamp())).random() < 0.002:
        return DeviceStatus.ERROR
    return DeviceStatus.MEASURING


def align(t: datetime, interval_s: int) -> datetime:
    ts = int(t.timestamp())
    return datetime.fromtimestamp(ts - ts % interval_s, UTC)


def readings(
    series: Sequence[Series],
    start: datetime,
    end: datetime,
    seed: int = 1,
    channel: Channel = Channel.SIMULATOR,
) -> Iterator[RawReading]:
    """Every reading measured in [start, end), in time order across all series."""
    interval = math.gcd(*(s.interval_s for s in series)) if series else 60
    t = align(start, interval)
    if t < start:
        t += timedelta(seconds=interval)
    while t < end:
        epoch = int(t.timestamp())
        for s in series:
            if epoch % s.interval_s:
                continue
            yield RawReading(
                source_id=s.source_id,
                parameter=s.parameter,
                value=value_at(s, t, seed),
                unit=s.unit,
                measured_at=t,
                status=status_at(s, t, seed).value,
                received_at=t,
                channel=channel.value,
                origin=f"sim:{s.source_id}:{t:%Y%m%d%H%M%S}",
            )
        t += timedelta(seconds=interval)

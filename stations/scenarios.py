"""What goes wrong at real sources, on top of ``simulator.readings``: deterministic by seed.

- **exceedance episodes** at a few emission sources (outfalls, stacks): on some local days the
  pollutants run at 2.5–4× their usual level for a few hours (a treatment plant upset, a filter
  bag failure), enough to break the QCVN 40/19 limits and open violations;
- **spikes**: a single reading several times its neighbours (electrical noise);
- **stuck sensors**: the same value repeated for a whole hour (a frozen analyser).

All three are pure functions of (seed, source, parameter, time), so a replay is identical.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.parameters import Parameter
from core.records import Channel, RawReading
from stations.registry import Registry
from stations.simulator import LOCAL_OFFSET_H, Series, readings, value_at

# Parameters an upset raises (flows, temperatures, pH and O2 are left alone).
POLLUTANTS = frozenset(
    {
        Parameter.COD,
        Parameter.BOD5,
        Parameter.TSS,
        Parameter.NH4,
        Parameter.TN,
        Parameter.TP,
        Parameter.DUST,
        Parameter.SO2,
        Parameter.NOX,
        Parameter.CO,
    }
)


@dataclass(frozen=True)
class ScenarioKnobs:
    episode_sources: int = 4  # emission sources that have exceedance episodes
    episode_daily_prob: float = 0.6  # chance such a source has an episode on a local day
    episode_hours: tuple[int, int] = (2, 5)  # duration range, whole hours
    episode_factor: tuple[float, float] = (2.5, 4.0)
    spike_prob: float = 0.001  # per reading
    spike_factor: float = 6.0
    stuck_prob_per_hour: float = 0.002  # per series and clock hour

    @classmethod
    def calm(cls) -> ScenarioKnobs:
        """No episodes, spikes or stuck sensors (the bare simulator)."""
        return cls(episode_sources=0, spike_prob=0.0, stuck_prob_per_hour=0.0)


def _rng(seed: int, *parts: object) -> random.Random:
    digest = hashlib.sha256(repr(("scenario", seed, *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def episodic_sources(registry: Registry, seed: int, count: int) -> frozenset[str]:
    """``count`` emission sources chosen by seed (stable under registry re-ordering)."""
    ids = sorted(s.id for s in registry.sources if s.kind.is_emission)
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    return frozenset(ranked[:count])


def episode_factor(source_id: str, t: datetime, seed: int, knobs: ScenarioKnobs) -> float:
    """The multiplier of the episode running at ``t`` (1.0 when none)."""
    local = t + timedelta(hours=LOCAL_OFFSET_H)
    rng = _rng(seed, "episode", source_id, local.date().isoformat())
    if rng.random() >= knobs.episode_daily_prob:
        return 1.0
    hours = rng.randint(*knobs.episode_hours)
    start = rng.randrange(0, 24 - hours)
    factor = rng.uniform(*knobs.episode_factor)
    return factor if start <= local.hour < start + hours else 1.0


def is_spike(s: Series, t: datetime, seed: int, knobs: ScenarioKnobs) -> bool:
    return _rng(seed, "spike", s.source_id, s.parameter, int(t.timestamp())).random() < (
        knobs.spike_prob
    )


def stuck_since(s: Series, t: datetime, seed: int, knobs: ScenarioKnobs) -> datetime | None:
    """Start of the clock hour whose value the sensor repeats, when stuck at ``t``."""
    hour = t.replace(minute=0, second=0, microsecond=0)
    hit = _rng(seed, "stuck", s.source_id, s.parameter, int(hour.timestamp())).random()
    return hour if hit < knobs.stuck_prob_per_hour else None


def value_with_scenarios(
    s: Series,
    t: datetime,
    seed: int,
    knobs: ScenarioKnobs,
    episodic: frozenset[str],
) -> float:
    """The simulator's value at ``t`` with stuck sensors, episodes and spikes applied."""
    since = stuck_since(s, t, seed, knobs)
    base_time = since if since is not None else t
    value = value_at(s, base_time, seed)
    if since is not None:
        return value  # a frozen analyser repeats itself, upsets or not
    if s.source_id in episodic and s.parameter in POLLUTANTS:
        value *= episode_factor(s.source_id, t, seed, knobs)
    if is_spike(s, t, seed, knobs):
        value *= knobs.spike_factor
    return round(value, 3)


def scenario_readings(
    series: Sequence[Series],
    start: datetime,
    end: datetime,
    seed: int,
    *,
    episodic: Iterable[str] = (),
    knobs: ScenarioKnobs | None = None,
    channel: Channel = Channel.SIMULATOR,
) -> Iterator[RawReading]:
    """``simulator.readings`` with the scenarios applied (same order, same statuses)."""
    knobs = knobs or ScenarioKnobs()
    chosen = frozenset(episodic)
    by_key = {(s.source_id, s.parameter): s for s in series}
    for r in readings(series, start, end, seed, channel):
        s = by_key[(r.source_id, r.parameter)]
        r.value = value_with_scenarios(s, r.measured_at, seed, knobs, chosen)
        yield r

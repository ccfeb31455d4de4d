"""The simulator's dataloggers and scenarios: deterministic plans that parse as intended."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import RejectReason
from stations.circular10 import parse_file, parse_filename
from stations.ftp_delivery import (
    BadLine,
    DeliveryKnobs,
    clock_skew_s,
    corrupt_line,
    outage_end,
    plan_files,
)
from stations.registry import Registry, load_registry
from stations.scenarios import (
    POLLUTANTS,
    ScenarioKnobs,
    episode_factor,
    episodic_sources,
    scenario_readings,
)
from stations.sim_registry import series_for
from stations.simulator import Series, readings

END = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)  # 13:00 local
START = END - timedelta(hours=2)
SOURCES = {"HD-KK-01", "HD-NT-03", "HD-KT-01"}  # air station, outfall, stack


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="module")
def series(registry: Registry) -> list[Series]:
    return [s for s in series_for(registry) if s.source_id in SOURCES]


def test_plan_is_deterministic_and_files_parse(registry: Registry, series: list[Series]) -> None:
    knobs = DeliveryKnobs(bad_line_prob=0.3, outage_prob_per_hour=0.0)
    files = plan_files(series, registry, START, END, seed=7, knobs=knobs)
    assert files == plan_files(series, registry, START, END, seed=7, knobs=knobs)
    assert files != plan_files(series, registry, START, END, seed=8, knobs=knobs)
    # one file per source per reporting interval
    assert Counter(f.source_id for f in files) == {
        s: 7200 // registry.get(s).interval_s for s in SOURCES
    }
    reasons: Counter[str] = Counter()
    for f in files:
        identity = parse_filename(f.name)
        assert registry.by_ftp(identity.province, identity.facility, identity.station).id == (  # type: ignore[union-attr]
            f.source_id
        )
        result = parse_file(f.name, f.body, registry, received_at=f.due_at, channel="ftp")
        assert [(r.parameter, r.value, r.measured_at) for r in result.readings] == [
            (r.parameter, r.value, r.measured_at) for r in f.readings
        ]
        assert len(result.rejections) == f.bad_lines
        reasons.update(r.reason for r in result.rejections)
        assert f.due_at <= END + timedelta(minutes=5)
    assert sum(f.bad_lines for f in files) > 0
    assert set(reasons) <= {R.NOT_FINITE, R.UNKNOWN_PARAMETER, R.BAD_STATUS, R.FIELD_COUNT}


R = RejectReason


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (BadLine.NAN, R.NOT_FINITE),
        (BadLine.UNKNOWN_SYMBOL, R.UNKNOWN_PARAMETER),
        (BadLine.STATUS_WORD, R.BAD_STATUS),
        (BadLine.TRUNCATED, R.FIELD_COUNT),
    ],
)
def test_each_bad_line_gets_its_reason(
    registry: Registry, kind: BadLine, reason: RejectReason
) -> None:
    line = "SO2\t12.5\tµg/Nm3\t20261124100500\t00".encode()
    name = "HD_TTQT_KHI001_20261124100500.txt"
    at = datetime(2026, 11, 24, 3, 10, tzinfo=UTC)
    result = parse_file(name, corrupt_line(line, kind), registry, received_at=at, channel="ftp")
    assert [r.reason for r in result.rejections] == [reason]


def test_outage_holds_files_until_the_link_returns(
    registry: Registry, series: list[Series]
) -> None:
    knobs = DeliveryKnobs(outage_prob_per_hour=0.5, outage_minutes=30, bad_line_prob=0)
    files = plan_files(series, registry, START, END, seed=3, knobs=knobs)
    held = [f for f in files if f.resend]
    assert held, "with p=0.5 per hour some hour must be cut"
    for f in held:
        back = max(r.measured_at for r in f.readings) + timedelta(seconds=knobs.latency_s)
        assert f.due_at == outage_end(f.source_id, back, 3, knobs)
        assert f.due_at.minute == 30 and f.due_at.second == 0
    # nothing is lost: the same files as without outages, only later
    calm = plan_files(
        series,
        registry,
        START,
        END,
        seed=3,
        knobs=DeliveryKnobs(outage_prob_per_hour=0, outage_minutes=30, bad_line_prob=0),
    )
    assert sorted(f.name for f in files) == sorted(f.name for f in calm)


def test_clock_skew_is_bounded_and_shifts_stamps(registry: Registry, series: list[Series]) -> None:
    knobs = DeliveryKnobs(skew_share=1.0, bad_line_prob=0, outage_prob_per_hour=0)
    files = plan_files(series, registry, START, END, seed=5, knobs=knobs)
    for f in files:
        skew = clock_skew_s(f.source_id, 5, knobs)
        assert -180 <= skew <= 60
        assert all((r.measured_at.timestamp() - skew) % 60 == 0 for r in f.readings)


def test_calm_scenarios_are_the_bare_simulator(series: list[Series]) -> None:
    bare = [(r.parameter, r.value) for r in readings(series, START, END, 2)]
    same = [
        (r.parameter, r.value)
        for r in scenario_readings(series, START, END, 2, knobs=ScenarioKnobs.calm())
    ]
    assert same == bare


def test_episodes_raise_pollutants_at_chosen_emission_sources(registry: Registry) -> None:
    knobs = ScenarioKnobs(episode_daily_prob=1.0)
    chosen = episodic_sources(registry, 1, 4)
    assert len(chosen) == 4
    assert all(registry.get(i).kind.is_emission for i in chosen)
    source = sorted(chosen)[0]
    day = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 00:00 local, 24 November
    factors = [episode_factor(source, day + timedelta(hours=h), 1, knobs) for h in range(24)]
    raised = [f for f in factors if f != 1.0]
    assert 2 <= len(raised) <= 5 and len(set(raised)) == 1
    assert 2.5 <= raised[0] <= 4.0
    series = [s for s in series_for(registry) if s.source_id == source]
    values = {
        s.parameter: max(
            r.value
            for r in scenario_readings(
                [s],
                day,
                day + timedelta(days=1),
                1,
                episodic=chosen,
                knobs=ScenarioKnobs(episode_daily_prob=1.0, spike_prob=0),
            )
        )
        / s.base
        for s in series
    }
    assert any(v > 2 for p, v in values.items() if p in POLLUTANTS)
    assert all(v < 2 for p, v in values.items() if p not in POLLUTANTS)


def test_stuck_sensor_repeats_its_value(registry: Registry, series: list[Series]) -> None:
    knobs = ScenarioKnobs(stuck_prob_per_hour=1.0, spike_prob=0, episode_sources=0)
    values = [
        r.value
        for r in scenario_readings(series[:1], START, START + timedelta(hours=1), 1, knobs=knobs)
    ]
    assert len(values) > 1 and len(set(values)) == 1

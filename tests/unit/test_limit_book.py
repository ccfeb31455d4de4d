"""streams/checks.py: the limits an average is checked against, cached per day and shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.records import Average
from stations.registry import ParameterSpec, Source, load_registry
from streams.checks import LOCAL_TZ, LimitBook
from thresholds.catalogue import load_catalogue
from thresholds.violations import applies


def test_the_cached_limits_are_those_applies_picks_for_each_average() -> None:
    """Every source and parameter of the registry, every period, final or running, valid or
    not, on two days: the cache answers as filtering the day's limits with ``applies`` does
    (a final valid rolling 24-h mean also meets the daily limits, for early warnings)."""
    registry, catalogue = load_registry(), load_catalogue()
    book = LimitBook(registry, catalogue)
    checked = met = 0
    for day in (datetime(2026, 10, 1, 5, tzinfo=UTC), datetime(2026, 12, 6, 5, tzinfo=UTC)):
        for source in registry.sources:
            for spec in source.parameters:
                for period in ("1h", "8h", "24h", "day", "nowcast"):
                    for final, valid in ((True, True), (True, False), (False, True)):
                        avg = _average(source.id, spec, period, day, final, valid)
                        local = (day - timedelta(microseconds=1)).astimezone(LOCAL_TZ).date()
                        want = [
                            lim
                            for lim in book._resolve_uncached(source.id, local).limits
                            if applies(lim, avg)
                        ]
                        assert book.for_average(avg) == want
                        assert book.for_average(avg) == want  # and again, from the cache
                        checked += 1
                        met += bool(want)
    assert met > 100 and checked > met  # limits were met, and not by every average


def test_days_with_the_same_limits_share_one_memo_entry_per_shape() -> None:
    """A week of hourly means for one series: one set of limits in force, so one entry of the
    applicable-limits memo per shape of average, not one per day (streams/checks.py)."""
    registry, catalogue = load_registry(), load_catalogue()
    finder = LimitBook(registry, catalogue)  # its memo holds the sources tried on the way
    source = next(s for s in registry.sources if finder.for_average(_hourly(s, 0)))
    book = LimitBook(registry, catalogue)
    days = [book._resolve(source.id, (_hourly(source, d).window_end).date()) for d in range(7)]
    assert all(d is days[0] for d in days)
    for d in range(7):
        assert book.for_average(_hourly(source, d)) == book.for_average(_hourly(source, 0))
    assert book._applicable.cache_info().currsize == 1


def _hourly(source: Source, day: int) -> Average:
    end = datetime(2026, 11, 2, 5, tzinfo=UTC) + timedelta(days=day)
    return _average(source.id, source.parameters[0], "1h", end)


def _average(
    source_id: str,
    spec: ParameterSpec,
    period: str,
    end: datetime,
    final: bool = True,
    valid: bool = True,
) -> Average:
    return Average(
        source_id=source_id,
        parameter=spec.code.value,
        period=period,
        window_start=end - timedelta(hours=1),
        window_end=end,
        value=1.0,
        unit=spec.unit.value,
        samples=12,
        expected=12,
        completeness=1.0,
        valid=valid,
        final=final,
    )

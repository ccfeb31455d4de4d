"""What one station account may cost the gateway (stations/ingest_limits.py): the deliveries
rate limit over any 60 s, and the cap on rejection records per delivery (pure logic)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime

from core.errors import RejectReason
from core.records import Rejection
from stations.ingest_limits import WINDOW_S, RateLimiter, cap_rejections

AT = datetime(2026, 11, 24, 3, 10, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admits(limiter: RateLimiter, clock: Clock, at: float, account: str = "HD-KK-01") -> bool:
    clock.now = 1000.0 + at
    return limiter.admit(account)


# --- RateLimiter ---------------------------------------------------------------------------


def test_at_most_n_in_any_60_s_and_the_oldest_leaves_after_exactly_60_s() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock)
    assert [admits(limiter, clock, t) for t in (0, 10, 20)] == [True] * 3
    assert not admits(limiter, clock, 30)
    assert not admits(limiter, clock, 59.999)
    assert WINDOW_S == 60.0
    assert admits(limiter, clock, 60)  # the one at 0 is out of (0, 60]
    assert not admits(limiter, clock, 60.5)  # 10, 20, 60 are in
    assert admits(limiter, clock, 70)


def test_a_burst_across_a_minute_boundary_is_still_one_window() -> None:
    """Not per calendar minute: 3 at :59 and 3 more at :01 is 6 within 2 s."""
    clock = Clock()
    limiter = RateLimiter(3, clock)
    assert [admits(limiter, clock, 59) for _ in range(3)] == [True] * 3
    assert [admits(limiter, clock, 61) for _ in range(3)] == [False] * 3
    assert admits(limiter, clock, 119) is True


def test_refusals_do_not_count_against_the_account() -> None:
    clock = Clock()
    limiter = RateLimiter(2, clock)
    assert admits(limiter, clock, 0) and admits(limiter, clock, 1)
    assert not any(admits(limiter, clock, t) for t in range(2, 60))  # hammering meanwhile
    assert admits(limiter, clock, 60) and admits(limiter, clock, 61)


def test_accounts_are_limited_separately() -> None:
    clock = Clock()
    limiter = RateLimiter(1, clock)
    assert admits(limiter, clock, 0, "HD-KK-01")
    assert not admits(limiter, clock, 1, "HD-KK-01")
    assert admits(limiter, clock, 1, "HD-KK-02")


def test_threads_together_get_exactly_the_limit() -> None:
    clock = Clock()
    limiter = RateLimiter(50, clock)
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        mine = [limiter.admit("HD-KK-01") for _ in range(100)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 50 and len(results) == 800


# --- cap_rejections ------------------------------------------------------------------------


def rejection(reason: RejectReason, line: int | None) -> Rejection:
    return Rejection(
        reason=reason.value,
        message=f"line {line}: {reason.value}",
        channel="ftp",
        received_at=AT,
        original_b64="eA==",
        source_id="HD-KK-01",
        origin="ftp:HD_TTQT_KHI001_20261124100500.txt",
        line=line,
        field=None,
    )


def test_up_to_the_limit_every_rejection_is_kept() -> None:
    items = [rejection(RejectReason.UNKNOWN_UNIT, i) for i in range(1, 4)]
    for limit in (3, 10):
        capped = cap_rejections(items, limit)
        assert capped.rejections == items and capped.summarised == Counter()


def test_the_rest_becomes_one_summary_with_counts_by_reason_and_the_line_span() -> None:
    kept = [rejection(RejectReason.UNKNOWN_UNIT, i) for i in (1, 2)]
    rest = [
        rejection(RejectReason.UNKNOWN_PARAMETER, 7),
        rejection(RejectReason.UNKNOWN_UNIT, 3),
        rejection(RejectReason.UNKNOWN_PARAMETER, 9),
    ]
    capped = cap_rejections(kept + rest, 2)
    assert capped.rejections[:2] == kept
    assert len(capped.rejections) == 3
    assert capped.summarised == Counter(
        {RejectReason.UNKNOWN_PARAMETER.value: 2, RejectReason.UNKNOWN_UNIT.value: 1}
    )
    summary = capped.rejections[2]
    assert summary.reason == RejectReason.TOO_MANY_REJECTIONS.value
    assert summary.line == 3  # the first line it stands for
    assert "3 more rejections after the first 2" in summary.message
    assert "unknown_parameter × 2, unknown_unit × 1" in summary.message
    assert "lines 3–9" in summary.message and "archived" in summary.message
    assert summary.original_b64 == ""  # the evidence is the archived body, not copied again
    assert (summary.source_id, summary.channel, summary.received_at, summary.origin) == (
        "HD-KK-01",
        "ftp",
        AT,
        "ftp:HD_TTQT_KHI001_20261124100500.txt",
    )


def test_a_summary_of_rejections_without_lines_has_no_line() -> None:
    items = [rejection(RejectReason.NOT_UTF8, None) for _ in range(5)]
    capped = cap_rejections(items, 1)
    summary = capped.rejections[-1]
    assert summary.line is None and "lines" not in summary.message
    assert capped.summarised == Counter({RejectReason.NOT_UTF8.value: 4})

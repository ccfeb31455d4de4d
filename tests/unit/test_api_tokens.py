"""API token format, verdicts and the per-client token bucket (pure logic, issue 20)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console.rate_limit import TokenBuckets
from core.api_tokens import ApiToken, Scope, Verdict, bearer, digest, mint, parse_id, secret_matches

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def _token(**changes: object) -> ApiToken:
    fields: dict[str, object] = {
        "id": "abcd1234",
        "name": "portal",
        "scope": Scope.READ,
        "sources": (),
        "created_at": NOW - timedelta(days=1),
        "created_by": "adm",
        "expires_at": None,
        "revoked_at": None,
        "revoked_by": None,
        "last_used_at": None,
    }
    fields.update(changes)
    return ApiToken(**fields)  # type: ignore[arg-type]


def test_minted_tokens_parse_and_differ() -> None:
    (i1, t1), (i2, t2) = mint(), mint()
    assert parse_id(t1) == i1 and parse_id(t2) == i2 and t1 != t2
    assert len(t1) == len("qt_") + 8 + 1 + 43
    for bad in ("", "qt_", "qt_ABCDEFGH_" + "x" * 43, "qt_abcd1234_" + "x" * 42, t1 + "x"):
        assert parse_id(bad) is None, bad


def test_bearer_header() -> None:
    assert bearer("Bearer qt_x") == "qt_x"
    assert bearer("bearer   qt_x ") == "qt_x"
    for header in (None, "", "Bearer", "Bearer  ", "Basic qt_x", "qt_x"):
        assert bearer(header) is None, header


def test_secret_matches_only_its_digest() -> None:
    _, token = mint()
    assert secret_matches(digest(token), token)
    assert not secret_matches(digest(token), token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not secret_matches(None, token)


@pytest.mark.parametrize(
    ("changes", "verdict"),
    [
        ({}, Verdict.OK),
        ({"expires_at": NOW + timedelta(seconds=1)}, Verdict.OK),
        ({"expires_at": NOW}, Verdict.EXPIRED),
        ({"revoked_at": NOW - timedelta(hours=1)}, Verdict.REVOKED),
        ({"revoked_at": NOW, "expires_at": NOW - timedelta(days=1)}, Verdict.REVOKED),
    ],
)
def test_verdict(changes: dict[str, object], verdict: Verdict) -> None:
    assert _token(**changes).verdict(NOW) is verdict


def test_token_bucket_bursts_then_refills_per_client() -> None:
    t = [0.0]
    buckets = TokenBuckets(per_minute=60, burst=3, clock=lambda: t[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take("a")
    assert wait == pytest.approx(1.0) and buckets.retry_after(wait) == "1"
    assert buckets.take("b") == 0.0  # another client has its own bucket
    t[0] = 1.0
    assert buckets.take("a") == 0.0 and buckets.take("a") > 0
    t[0] = 100.0  # refilled up to the burst, no further
    assert [buckets.take("a") for _ in range(4)][-1] > 0


def test_token_bucket_forgets_full_buckets_at_its_size() -> None:
    t = [0.0]
    buckets = TokenBuckets(per_minute=60, burst=2, clock=lambda: t[0], max_clients=2)
    buckets.take("a")
    buckets.take("b")
    t[0] = 10.0
    assert buckets.take("c") == 0.0
    assert len(buckets._buckets) <= 2
    with pytest.raises(ValueError):
        TokenBuckets(per_minute=0, burst=1)

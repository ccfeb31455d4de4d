"""A token bucket per client (API token id or user): ``burst`` requests at once, refilled at
``per_minute``. In memory, per console process: a restart or a second replica gives a client a
fresh bucket, which is acceptable for a fairness limit (it is no security boundary)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("per_minute > 0 and burst >= 1")
        self.rate = per_minute / 60.0  # tokens per second
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}

    def take(self, client: str) -> float:
        """Take one request for ``client``: 0.0 when allowed, else the seconds to wait."""
        now = self.clock()
        b = self._buckets.get(client)
        if b is None:
            if len(self._buckets) >= self.max_clients:
                self._forget_full(now)
            b = self._buckets[client] = _Bucket(float(self.burst), now)
        b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.rate)
        b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / self.rate

    def retry_after(self, wait_s: float) -> str:
        """A Retry-After header value: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait_s)))

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (they hold no state worth keeping)."""
        full = [
            k for k, b in self._buckets.items() if b.tokens + (now - b.at) * self.rate >= self.burst
        ]
        for k in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[k]

"""What one station account may cost the gateway: body size, deliveries per minute, and the
number of rejection records one body may put on ``readings.rejected``.

Why the cap on rejections: every bad line of a body becomes a dead letter with its own bytes,
so a 1 MB body of junk lines once made 340 k rejections and 93 MB on Kafka. A delivery now
publishes at most ``max_rejections`` of them one by one and one ``too_many_rejections`` record
for the rest (counts by reason, first and last line); the whole body stays in the archive.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.errors import RejectReason
from core.records import Rejection
from core.settings import Settings

WINDOW_S = 60.0


@dataclass(frozen=True)
class IngestLimits:
    max_body_bytes: int
    deliveries_per_minute: int
    max_rejections: int
    ftp_max_cons_per_ip: int

    @classmethod
    def defaults(cls) -> IngestLimits:
        """The Settings defaults (tests and tools that build an Ingest without settings)."""
        fields = Settings.model_fields
        return cls(
            max_body_bytes=fields["gateway_max_body_bytes"].default,
            deliveries_per_minute=fields["gateway_deliveries_per_minute"].default,
            max_rejections=fields["gateway_max_rejections"].default,
            ftp_max_cons_per_ip=fields["gateway_ftp_max_cons_per_ip"].default,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        return cls(
            max_body_bytes=settings.gateway_max_body_bytes,
            deliveries_per_minute=settings.gateway_deliveries_per_minute,
            max_rejections=settings.gateway_max_rejections,
            ftp_max_cons_per_ip=settings.gateway_ftp_max_cons_per_ip,
        )


class RateLimiter:
    """At most ``per_minute`` admissions per account in any sliding 60 s (thread-safe: the FTP
    threads, the MQTT thread and the event loop share it)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, account: str) -> bool:
        now = self.clock()
        with self._lock:
            times = self._seen.setdefault(account, deque())
            while times and times[0] <= now - WINDOW_S:
                times.popleft()
            if len(times) >= self.per_minute:
                return False
            times.append(now)
            return True


@dataclass(frozen=True)
class Capped:
    """The rejections to publish, and how many of each reason the summary stands for."""

    rejections: list[Rejection]
    summarised: Counter[str]


def cap_rejections(rejections: Sequence[Rejection], limit: int) -> Capped:
    """Keep the first ``limit`` rejections; fold the rest into one ``too_many_rejections``."""
    if len(rejections) <= limit:
        return Capped(list(rejections), Counter())
    kept, rest = list(rejections[:limit]), rejections[limit:]
    by_reason = Counter(r.reason for r in rest)
    lines = [r.line for r in rest if r.line is not None]
    span = f"; lines {min(lines)}–{max(lines)}" if lines else ""
    counts = ", ".join(f"{reason} × {n}" for reason, n in sorted(by_reason.items()))
    first = rest[0]
    summary = Rejection(
        reason=RejectReason.TOO_MANY_REJECTIONS.value,
        message=f"{len(rest)} more rejections after the first {limit} not recorded one by one "
        f"({counts}){span}; the whole body is archived",
        channel=first.channel,
        received_at=first.received_at,
        original_b64="",  # the evidence is the archived body
        source_id=first.source_id,
        origin=first.origin,
        line=min(lines) if lines else None,
        field=None,
    )
    return Capped([*kept, summary], by_reason)

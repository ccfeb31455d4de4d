"""The wall clock as one function: components take a ``clock`` argument defaulting to
``utc_now``, so tests can pin "now" (the gateways, the forwarder, the FTP
delivery simulator, the console's charts and public page)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)

"""Progress of long command-line work (backfill, exports, scheduled reports) on stderr.

On a terminal: one line rewritten in place, at most every ``every_s`` seconds. Elsewhere (a log,
a pipe, cron): nothing while working, so logs hold no noise, and one summary line at the end.
stdout is never touched: it stays the command's result (a path, JSON, a table).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        every_s: float = 1.0,
        tty: bool | None = None,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self.tty = self.stream.isatty() if tty is None else tty
        self.started = time.monotonic()
        self._shown = 0.0
        self._drawn = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, done: int, total: int | None = None, unit: str = "") -> None:
        """``done`` of ``total`` (None: unknown total, a count only)."""
        if not self.tty:
            return
        now = time.monotonic()
        last = total is not None and done >= total
        if now - self._shown < self.every_s and not last:
            return
        self._shown = now
        what = f"{done}/{total}" if total else f"{done}"
        pct = f" {100 * done / total:3.0f}%" if total else ""
        text = f"{self.label}:{pct} {what}{(' ' + unit) if unit else ''}, {self.elapsed():.0f} s"
        self.stream.write("\r\x1b[K" + text)  # carriage return, clear the line
        self.stream.flush()
        self._drawn = True

    def finish(self, summary: str) -> None:
        """The one line that stays: what was done, and how long it took."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
        self.stream.write(f"{self.label}: {summary} ({self.elapsed():.1f} s)\n")
        self.stream.flush()

"""core/progress.py: a line redrawn on a terminal, one summary line elsewhere, never stdout."""

from __future__ import annotations

import io

from core.progress import Progress


def test_off_a_terminal_only_the_summary_line() -> None:
    err = io.StringIO()
    p = Progress("export", stream=err, every_s=0.0, tty=False)
    for i in range(1, 101):
        p.update(i, 100)
    p.finish("wrote out.csv (12 kB)")
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("export: wrote out.csv (12 kB) (")
    assert "\r" not in err.getvalue()


def test_on_a_terminal_a_redrawn_line_then_the_summary() -> None:
    err = io.StringIO()
    p = Progress("simulate backfill", stream=err, every_s=0.0, tty=True)
    p.update(30, 60, unit="simulated min")
    p.update(60, 60, unit="simulated min")
    p.finish("caught up")
    text = err.getvalue()
    assert "\rsimulate backfill:  50% 30/60 simulated min" in text.replace("\x1b[K", "")
    assert " 100% 60/60 simulated min" in text
    assert text.endswith("\n") and text.count("\n") == 1  # one line stays
    assert text.rsplit("\r\x1b[K", 1)[1].startswith("simulate backfill: caught up (")


def test_on_a_terminal_updates_are_throttled() -> None:
    err = io.StringIO()
    p = Progress("report", stream=err, every_s=3600.0, tty=True)
    p._shown = p.started  # as if a line had just been drawn
    for i in range(1, 50):
        p.update(i, 100)
    assert err.getvalue() == ""  # nothing within the interval
    p.update(100, 100)  # the last step is always shown
    assert "100/100" in err.getvalue()

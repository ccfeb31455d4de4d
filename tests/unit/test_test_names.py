"""Test modules need unique names: tests/integration and tests/e2e are not packages, so two
files with one name make pytest stop at collection ("import file mismatch") on a clean clone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_name() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []

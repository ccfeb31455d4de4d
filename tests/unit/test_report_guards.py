"""Pure guards of the reports (issue 16): which archive paths an evidence package may read, which
cells are made inert in CSV, which periods a report may cover."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from reports.evidence import NotIncluded, archive_member, archived_original
from reports.i18n import Lang
from reports.periods import PeriodError, PeriodOutOfRange, check_bounds, check_regulations
from reports.periods import parse_period as period
from reports.render_csv import csv_cell, inert
from thresholds.catalogue import load_catalogue

A, B = "HD-KK-01", "HD-NT-03"
DAY = "2026-11-24"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (None, "not archived"),
        ("", "not archived"),
        (f"{DAY}/{B}/x.txt", f"is not in {A}'s folder"),
        (f"{DAY}/{A}/../{B}/x.txt", "is not <date>/<source>/<file>"),
        (f"{DAY}/{A}/..", "is not <date>/<source>/<file>"),
        (f"/{DAY}/{A}/x.txt", "is not <date>/<source>/<file>"),
        (f"{DAY}/{A}/sub/x.txt", "is not <date>/<source>/<file>"),
        (f"{DAY}/{A}", "is not <date>/<source>/<file>"),
        (f"{DAY}/./{A}/x.txt", "is not <date>/<source>/<file>"),  # not the gateway's spelling
        (f"{DAY}//{A}/x.txt", "is not <date>/<source>/<file>"),
        (f"{DAY}/{A}/x\\..\\..\\y", "is not <date>/<source>/<file>"),
        (f"../{A}/x.txt", "is not <date>/<source>/<file>"),
        (f"quarantine/{A}/x.txt", "is not <date>/<source>/<file>"),
        (f"_quarantine/{DAY}/{A}/x.txt", "is not <date>/<source>/<file>"),
    ],
)
def test_archive_member_takes_only_the_sources_own_folder(path: str | None, reason: str) -> None:
    with pytest.raises(NotIncluded, match=reason.replace("(", r"\(").replace(".", r"\.")):
        archive_member(path, A)


def test_archive_member_accepts_the_gateways_layout() -> None:
    assert archive_member(f"{DAY}/{A}/HD_TTQT_KHI001_20261124100500.txt", A).parts[1] == A


def test_archived_original_refuses_links_out_and_missing_files(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    own, other = root / DAY / A, root / DAY / B
    own.mkdir(parents=True)
    other.mkdir(parents=True)
    (own / "a.txt").write_bytes(b"A's bytes")
    (other / "b.txt").write_bytes(b"B's bytes")
    (tmp_path / "outside.txt").write_bytes(b"outside")
    (own / "to_b.txt").symlink_to(other / "b.txt")
    (own / "to_outside.txt").symlink_to(tmp_path / "outside.txt")
    (own / "dir").mkdir()
    assert archived_original(root, f"{DAY}/{A}/a.txt", A) == b"A's bytes"
    for name in ("to_b.txt", "to_outside.txt", "dir"):
        with pytest.raises(NotIncluded, match="resolves outside"):
            archived_original(root, f"{DAY}/{A}/{name}", A)
    with pytest.raises(NotIncluded, match="missing from the archive"):
        archived_original(root, f"{DAY}/{A}/gone.txt", A)
    with pytest.raises(NotIncluded, match="no archive directory"):
        archived_original(None, f"{DAY}/{A}/a.txt", A)
    # the source's whole day folder a link into another source's folder
    os.rename(own, root / DAY / "was-a")
    (root / DAY / A).symlink_to(other)
    (other / "a.txt").write_bytes(b"B's forgery")
    with pytest.raises(NotIncluded, match="resolves outside"):
        archived_original(root, f"{DAY}/{A}/a.txt", A)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1", "'+1"),
        ("-1", "'-1"),  # text that looks like a number is still text
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        (-1.5, "-1.5"),
        (-2, "-2"),
        (None, ""),
    ],
)
def test_csv_cells_that_spreadsheets_would_run_are_made_inert(value: object, written: str) -> None:
    assert csv_cell(value, Lang.EN) == written


def test_inert_is_idempotent_on_plain_text() -> None:
    assert inert("ghi chú") == "ghi chú" and inert("'=1") == "'=1"


TODAY = date(2026, 12, 5)


@pytest.mark.parametrize(
    ("text", "max_days", "message"),
    [
        ("2017", 366, "ends before 2018"),
        ("2017-12-01..2017-12-31", 366, "ends before 2018"),
        ("2027-01", 366, "starts after the current year (2026)"),
        ("2025-01-01..2026-01-02", 366, "is 367 days; this report covers at most 366"),
        ("2026-Q4", 31, "at most 31 days (QUANTRAC_X)"),
    ],
)
def test_check_bounds_refuses(text: str, max_days: int, message: str) -> None:
    with pytest.raises(PeriodOutOfRange, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_bounds(
            period(text), first_year=2018, today=TODAY, max_days=max_days, setting="QUANTRAC_X"
        )


@pytest.mark.parametrize("text", ["2018", "2024", "2017-12-15..2018-01-15", "2026-12", "2026"])
def test_check_bounds_accepts(text: str) -> None:
    check_bounds(period(text), first_year=2018, today=TODAY, max_days=366, setting="QUANTRAC_X")


def test_check_regulations() -> None:
    cat = load_catalogue()
    new, old = cat["QCVN_05_2023"], cat["QCVN_05_2013"]
    check_regulations(period("2023-09-12..2023-12-31"), A, [new])
    with pytest.raises(PeriodOutOfRange, match="starts before QCVN 05:2023/BTNMT existed"):
        check_regulations(period("2023-09"), A, [new])
    with pytest.raises(PeriodOutOfRange, match="stopped applying \\(2023-09-11\\)"):
        check_regulations(period("2023-09"), A, [old])


@pytest.mark.parametrize("text", ["0000", "9999-12", "2026-02-30", "2026-13", "x"])
def test_unparseable_periods_are_period_errors(text: str) -> None:
    with pytest.raises(PeriodError):
        period(text)

"""The forwarder's archive scan (streams/forwarding.py Scanner) on a real folder tree."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from stations.archive import Archive
from streams.forwarding import ArchivedFile, Scanner

DAY = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)  # 10:00 local


def names(files: list[ArchivedFile]) -> list[str]:
    return [f.archive_path for f in files]


def test_new_files_once_each_in_archive_order_without_temporaries_or_unknown(
    tmp_path: Path,
) -> None:
    archive = Archive(tmp_path)
    a = archive.store("A_B_C_20261205100000.txt", b"1", received_at=DAY, source_id="HD-NT-01")
    b = archive.store("A_B_C_20261205100500.txt", b"2", received_at=DAY, source_id="HD-NT-01")
    os.utime(tmp_path / a, ns=(2_000, 2_000))  # archived first
    os.utime(tmp_path / b, ns=(3_000, 3_000))
    archive.store("x.txt", b"?", received_at=DAY, source_id=None)  # _unknown: never forwarded
    (tmp_path / "2026-12-05" / "HD-NT-01" / ".tmp-123").write_bytes(b"half")
    (tmp_path / "notes").mkdir()  # not a day folder
    old = archive.store(
        "A_B_C_20261201100000.txt", b"0", received_at=DAY - timedelta(days=4), source_id="HD-NT-01"
    )
    scanner = Scanner(tmp_path)
    assert names(scanner.new_files(date(2026, 12, 5))) == [a.as_posix(), b.as_posix()]
    assert scanner.new_files(date(2026, 12, 5)) == []
    assert names(scanner.new_files(date(2026, 12, 1))) == [old.as_posix()]


def test_a_file_linked_in_the_same_clock_tick_is_not_missed(tmp_path: Path) -> None:
    """The folder's mtime may not move for a link in the same coarse tick as the last look:
    a recent mtime is never trusted (failed before: the second file was skipped for good)."""
    archive = Archive(tmp_path)
    archive.store("A_B_C_20261205100000.txt", b"1", received_at=DAY, source_id="HD-NT-01")
    folder = tmp_path / "2026-12-05" / "HD-NT-01"
    scanner = Scanner(tmp_path)
    assert len(scanner.new_files(date(2026, 12, 5))) == 1
    st = folder.stat()
    second = archive.store("A_B_C_20261205100500.txt", b"2", received_at=DAY, source_id="HD-NT-01")
    os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))  # as if in the same tick
    assert names(scanner.new_files(date(2026, 12, 5))) == [second.as_posix()]


def test_a_settled_unchanged_folder_is_not_listed_again(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    archive.store("A_B_C_20261205100000.txt", b"1", received_at=DAY, source_id="HD-NT-01")
    folder = tmp_path / "2026-12-05" / "HD-NT-01"
    os.utime(folder, ns=(10**9, 10**9))  # long ago
    scanner = Scanner(tmp_path)
    assert len(scanner.new_files(date(2026, 12, 5))) == 1
    (folder / "A_B_C_20261205100500.txt").write_bytes(b"2")
    os.utime(folder, ns=(10**9, 10**9))  # unchanged and settled: skipped
    assert scanner.new_files(date(2026, 12, 5)) == []
    os.utime(folder)  # it moves: listed again, only the new file returned
    assert names(scanner.new_files(date(2026, 12, 5))) == [
        "2026-12-05/HD-NT-01/A_B_C_20261205100500.txt"
    ]

"""The archive of every original file and message body the gateway received.

Layout: ``<root>/<local date>/<source id or _unknown>/<file name>``. A write is atomic (a temporary
file in the same folder, fsync, then a hard link under the final name, which fails instead of
replacing), so a crash leaves either the whole file or nothing. A different body arriving under a
name already archived gets a suffix (``name.1.txt``); the same body again (a datalogger resending)
maps to the file already there.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

UNKNOWN = "_unknown"
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
MAX_NAME = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SOURCE = re.compile(r"^[A-Z0-9]+(-[A-Z0-9]+)*$")


def safe_name(name: str) -> str:
    """A file name that cannot leave its folder: no separators, no leading dot, bounded length.

    ``../../etc/passwd`` → ``_._.._etc_passwd``. Different hostile names
    may fold to one safe name; the suffixing in :meth:`Archive.store` keeps them apart.
    """
    base = _UNSAFE.sub("_", name)
    if base.startswith("."):
        base = "_" + base[1:]
    if len(base) > MAX_NAME:
        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        base = f"{base[: MAX_NAME - 13]}~{digest}"
    return base or "_empty"


def archive_folder(received_at: datetime, source_id: str | None) -> Path:
    """``<local date>/<source id>`` relative to the archive root (pure)."""
    day = received_at.astimezone(LOCAL_TZ).date().isoformat()
    folder = source_id if source_id and _SOURCE.match(source_id) else UNKNOWN
    return Path(day) / folder


def _candidates(name: str) -> list[str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    return [name] + [f"{stem}.{i}{suffix}" for i in range(1, 1000)]


class ArchiveError(OSError):
    """The archive could not store a body; the upload is not acknowledged (the sender retries)."""


class Archive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def store(
        self, name: str, data: bytes, *, received_at: datetime, source_id: str | None
    ) -> Path:
        """Store ``data`` atomically; return its path relative to the archive root."""
        relative_dir = archive_folder(received_at, source_id)
        folder = self.root / relative_dir
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "xb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            for candidate in _candidates(safe_name(name)):
                target = folder / candidate
                try:
                    os.link(tmp, target)
                    return relative_dir / candidate
                except FileExistsError:
                    if _same_content(target, data):
                        return relative_dir / candidate
        finally:
            tmp.unlink(missing_ok=True)
        raise ArchiveError(f"archive {folder}: 1000 different files named {name!r} already")


def _same_content(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False

"""Ingest credentials: one account per source (user name = source id), for FTP and HTTP Basic.

The passwords live in ``<data_dir>/ftp_users.json`` (``{"HD-KK-01": "…", …}``, mode 0600). The
gateway creates the file on first start with a random password per registered source and adds
accounts for sources added to the registry later; it never changes an existing password. The
department hands each station its line of the file. The simulator, running on the same
``data_dir``, reads the same file. Creation is atomic (temporary file + hard link), so a gateway
and a simulator started together agree on one set of passwords.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

FILE_NAME = "ftp_users.json"


def accounts_path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


class Accounts:
    """Source id → password, with a constant-time check."""

    def __init__(self, passwords: Mapping[str, str]) -> None:
        self._passwords = dict(passwords)

    def __contains__(self, source_id: object) -> bool:
        return source_id in self._passwords

    def __len__(self) -> int:
        return len(self._passwords)

    def ids(self) -> list[str]:
        return sorted(self._passwords)

    def password(self, source_id: str) -> str:
        return self._passwords[source_id]

    def check(self, source_id: str, password: str) -> bool:
        expected = self._passwords.get(source_id)
        # compare against a dummy when the user is unknown: the timing does not reveal ids
        ok = hmac.compare_digest(
            (expected or "\x00unknown").encode("utf-8"), password.encode("utf-8", "replace")
        )
        return expected is not None and ok


def load_or_create(path: Path, source_ids: Iterable[str]) -> tuple[Accounts, list[str]]:
    """Read the accounts file, adding a random password for each missing source id.

    Returns the accounts and the ids that were created now (to be announced once).
    """
    wanted = sorted(set(source_ids))
    current = _read(path) if path.exists() else {}
    created = [i for i in wanted if i not in current]
    if created:
        current.update({i: secrets.token_urlsafe(12) for i in created})
        if not path.exists() and _link_new(path, current):
            return Accounts(current), created
        # the file exists (or appeared meanwhile): merge into what is there and replace it
        merged = _read(path)
        really_new = [i for i in created if i not in merged]
        merged.update({i: current[i] for i in really_new})
        _replace(path, merged)
        return Accounts(merged), really_new
    return Accounts(current), []


def wait_for(path: Path, timeout_s: float) -> Accounts:
    """Read an accounts file another process creates (the simulator waits for the gateway)."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"{path}: no accounts file after {timeout_s:.0f}s")
        time.sleep(0.2)
    return Accounts(_read(path))


def _read(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected an object of source id → password strings")
    return data


def _write_tmp(path: Path, data: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(dict(sorted(data.items())), out, indent=1)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    return tmp


def _link_new(path: Path, data: dict[str, str]) -> bool:
    tmp = _write_tmp(path, data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _replace(path: Path, data: dict[str, str]) -> None:
    tmp = _write_tmp(path, data)
    os.replace(tmp, path)

"""Sending one archived file to one receiver: FTP(S) the Circular 10/2021 way, or HTTP POST.

Blocking clients (``ftplib``, ``httpx``), called from a thread by the forwarder. Each send says
how it went as a :class:`Sent` or raises :class:`Transient` (retry later: the receiver is down,
the login failed, a 4xx FTP reply, an HTTP 5xx/429) or :class:`Refused` (the receiver refuses
this file: an FTP 5xx on it, an HTTP 4xx).

No duplicates after a crash:

- **FTP**: the body goes to ``<name>.part`` and is renamed to its final name only when complete,
  so a receiver never picks up half a file; before uploading, an existing final file with the
  same bytes counts as delivered (a crash after the rename but before the ledger recorded it).
- **HTTP**: every POST carries an ``Idempotency-Key`` that is the same for every resend of one
  file to one destination; a 409 Conflict answer counts as delivered (the receiver has it).
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import posixpath
import socket
import ssl
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from stations.forward_config import Destination

PART_SUFFIX = ".part"


class Transient(Exception):
    """Try this file again later (backoff); nothing is wrong with the file."""


class Refused(Exception):
    """The receiver refuses this file; counted towards ``max_refusals``."""


@dataclass(frozen=True)
class Parcel:
    """One file for one destination."""

    remote_path: str  # relative to the destination's folder / sent as X-Quantrac-Path
    source_id: str
    archive_path: str
    sha256: str
    idempotency_key: str
    data: bytes


@dataclass(frozen=True)
class Sent:
    already: bool = False  # the receiver had it (an earlier attempt got through)


class Target(Protocol):
    def send(self, parcel: Parcel) -> Sent: ...

    def close(self) -> None: ...


def target_for(dest: Destination) -> Target:
    return HttpTarget(dest) if dest.kind == "http" else FtpTarget(dest)


# ---------------------------------------------------------------------------------------------
# FTP


class FtpTarget:
    """One control connection, kept open between files and reopened after any failure."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        parts = urlsplit(dest.url)
        self.host = parts.hostname or ""
        self.port = parts.port or 21
        self.base = parts.path.rstrip("/") or ""
        self._ftp: ftplib.FTP | None = None
        self._made: set[str] = set()  # folders known to exist on this connection

    def close(self) -> None:
        ftp, self._ftp = self._ftp, None
        self._made.clear()
        if ftp is not None:
            try:
                ftp.quit()
            except (OSError, EOFError, ftplib.Error):
                ftp.close()

    def _connect(self) -> ftplib.FTP:
        if self._ftp is not None:
            return self._ftp
        ftp: ftplib.FTP
        if self.dest.kind == "ftps":
            ftp = ftplib.FTP_TLS(context=ssl.create_default_context(), timeout=self.dest.timeout_s)
        else:
            ftp = ftplib.FTP(timeout=self.dest.timeout_s)
        try:
            ftp.connect(self.host, self.port)
            ftp.login(self.dest.username or "", self.dest.password or "")
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.voidcmd("TYPE I")
        except ftplib.error_perm as exc:
            ftp.close()
            # a refused login is the destination's problem, not the file's: retried
            raise Transient(f"login to {self.host}:{self.port} refused: {_reply(exc)}") from None
        except (OSError, EOFError, ftplib.Error) as exc:
            ftp.close()
            raise Transient(f"connect to {self.host}:{self.port}: {_reply(exc)}") from None
        self._ftp = ftp
        return ftp

    def send(self, parcel: Parcel) -> Sent:
        try:
            return self._send(self._connect(), parcel)
        except Refused:
            raise
        except ftplib.error_perm as exc:
            self.close()
            raise Refused(f"{parcel.remote_path}: {_reply(exc)}") from None
        except (OSError, EOFError, ftplib.Error) as exc:  # lost connection, 4xx, timeout
            self.close()
            raise Transient(f"{parcel.remote_path}: {_reply(exc)}") from None

    def _send(self, ftp: ftplib.FTP, parcel: Parcel) -> Sent:
        folder, name = posixpath.split(posixpath.join(self.base, parcel.remote_path))
        self._ensure_folder(ftp, folder)
        final = posixpath.join(folder, name)
        if self._has_same(ftp, final, parcel.data):
            return Sent(already=True)
        part = final + PART_SUFFIX
        ftp.storbinary(f"STOR {part}", io.BytesIO(parcel.data))
        try:
            ftp.rename(part, final)
        except ftplib.error_perm:
            # a server that will not rename over an existing file (a corrected resend):
            # remove the old one first; the .part file is still complete
            ftp.delete(final)
            ftp.rename(part, final)
        return Sent()

    def _has_same(self, ftp: ftplib.FTP, path: str, data: bytes) -> bool:
        try:
            size = ftp.size(path)
        except ftplib.error_perm:  # 550: no such file
            return False
        if size != len(data):
            return False
        out = io.BytesIO()
        ftp.retrbinary(f"RETR {path}", out.write)
        return out.getvalue() == data

    def _ensure_folder(self, ftp: ftplib.FTP, folder: str) -> None:
        if not folder or folder in self._made:
            return
        path = "/" if folder.startswith("/") else ""
        for part in folder.strip("/").split("/"):
            path = posixpath.join(path, part) if path else part
            if path in self._made:
                continue
            with contextlib.suppress(ftplib.error_perm):  # 550 exists (or not allowed: the
                ftp.mkd(path)  # STOR that follows says so)
            self._made.add(path)


def _reply(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"timed out ({text})"
    if isinstance(exc, EOFError):
        return "connection closed by the server"
    return text[:300]


# ---------------------------------------------------------------------------------------------
# HTTP

RETRY_STATUSES = frozenset({401, 403, 404, 408, 425, 429})  # the destination's, not the file's


class HttpTarget:
    """POST the bytes as they were archived; headers carry what a receiver needs to file them."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        auth = (
            httpx.BasicAuth(dest.username, dest.password)
            if dest.username is not None and dest.password is not None
            else None
        )
        headers = {"Authorization": f"Bearer {dest.token}"} if dest.token else {}
        self._client = httpx.Client(
            timeout=dest.timeout_s, auth=auth, headers=headers, follow_redirects=False
        )

    def close(self) -> None:
        self._client.close()

    def send(self, parcel: Parcel) -> Sent:
        try:
            response = self._client.post(
                self.dest.url,
                content=parcel.data,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Idempotency-Key": parcel.idempotency_key,
                    "X-Quantrac-Path": parcel.remote_path,
                    "X-Quantrac-Source": parcel.source_id,
                    "X-Content-SHA256": parcel.sha256,
                },
            )
        except httpx.HTTPError as exc:
            raise Transient(f"POST {self.dest.url}: {exc.__class__.__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            return Sent()
        if status == 409:
            return Sent(already=True)
        detail = f"POST {self.dest.url}: HTTP {status} {response.text[:200]!r}"
        if status >= 500 or status in RETRY_STATUSES:
            raise Transient(detail)
        raise Refused(detail)

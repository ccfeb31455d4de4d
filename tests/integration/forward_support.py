"""Receivers for the forwarding tests: a real pyftpdlib FTP server and a real HTTP server on
127.0.0.1, each in a thread, recording what arrived (and able to stop and start again on the
same port, as a receiver does during an outage); plus a forwarder on its own event loop."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from core.metrics import Metrics
from stations.archive import Archive
from stations.forward_config import Destination
from streams.forwarding import Forwarder

FTP_USER, FTP_PASSWORD = "national", "receiver-pass-1"


@dataclass
class FtpEvents:
    """What the receiver saw: each completed STOR and each rename, in order."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stored: list[str] = field(default_factory=list)
    renamed_to: list[str] = field(default_factory=list)

    def renames(self) -> list[str]:
        with self.lock:
            return list(self.renamed_to)

    def stores(self) -> list[str]:
        with self.lock:
            return list(self.stored)


class FtpReceiver:
    """A pyftpdlib server rooted at ``root``; ``stop()`` closes every connection, ``start()``
    listens again on the same port."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.events = FtpEvents()
        self._server: FTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _handler(self) -> type[FTPHandler]:
        events, root = self.events, self.root

        class Handler(FTPHandler):
            def on_file_received(self, file: str) -> None:
                with events.lock:
                    events.stored.append(Path(file).relative_to(root).as_posix())

            def ftp_RNTO(self, path: str) -> Any:
                result = super().ftp_RNTO(path)
                if result is not None:  # renamed
                    with events.lock:
                        events.renamed_to.append(Path(path).relative_to(root).as_posix())
                return result

        auth = DummyAuthorizer()
        auth.add_user(FTP_USER, FTP_PASSWORD, str(root), perm="elradfmwMT")
        Handler.authorizer = auth
        return Handler

    def start(self) -> FtpReceiver:
        self._stop.clear()
        # its own IOLoop: pyftpdlib's shared default one is closed by any other server's stop
        # (the gateway's, in the end-to-end test)
        self._server = FTPServer(("127.0.0.1", self.port), self._handler(), ioloop=IOLoop())
        server = self._server

        def serve() -> None:
            try:
                while not self._stop.is_set():
                    server.serve_forever(timeout=0.1, blocking=False, handle_exit=False)
            finally:
                server.close_all()

        self._thread = threading.Thread(target=serve, name="ftp-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
        self._thread = self._server = None


@dataclass
class Post:
    key: str
    path: str
    source: str
    authorization: str
    body: bytes


class HttpReceiver:
    """Accepts POSTs; keeps one copy per Idempotency-Key (a repeat gets 200 and is counted);
    answers 503 to the first ``fail_first`` requests and 400 to bodies ``refuse`` matches."""

    def __init__(self, fail_first: int = 0, refuse: Callable[[bytes], bool] | None = None) -> None:
        self.lock = threading.Lock()
        self.posts: list[Post] = []
        self.kept: dict[str, Post] = {}
        self.fail_first = fail_first
        self.refuse = refuse or (lambda body: False)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                post = Post(
                    key=self.headers.get("Idempotency-Key", ""),
                    path=self.headers.get("X-Quantrac-Path", ""),
                    source=self.headers.get("X-Quantrac-Source", ""),
                    authorization=self.headers.get("Authorization", ""),
                    body=body,
                )
                with receiver.lock:
                    receiver.posts.append(post)
                    if receiver.fail_first > 0:
                        receiver.fail_first -= 1
                        status = 503
                    elif receiver.refuse(body):
                        status = 400
                    elif hashlib.sha256(body).hexdigest() != self.headers["X-Content-SHA256"]:
                        status = 422
                    elif post.key in receiver.kept:
                        status = 200
                    else:
                        receiver.kept[post.key] = post
                        status = 201
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ForwarderThread:
    """A :class:`Forwarder` running on its own event loop in a thread."""

    def __init__(
        self, destinations: list[Destination], root: Path, database_url: str, metrics: Metrics
    ) -> None:
        self.forwarder = Forwarder(destinations, root, database_url, metrics, poll_s=0.3)
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.forwarder.run(self._stop))
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> ForwarderThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "forwarder did not stop"
        if self.error is not None:
            raise self.error


def circular10_file(station: str, minute: int) -> tuple[str, bytes]:
    """A Circular 10 name and body for ``station`` (HD_NT01_<station>) at 10:00 + minute."""
    stamp = f"20261205{10 + minute // 60:02d}{minute % 60:02d}00"
    name = f"HD_NT01_{station}_{stamp}.txt"
    body = f"TSS\t{minute + 0.5}\tmg/L\t{stamp}\t00\nCOD\t{minute * 2}\tmg/L\t{stamp}\t00\n"
    return name, body.encode()


def archive_file(archive: Archive, source_id: str, station: str, minute: int) -> str:
    name, body = circular10_file(station, minute)
    return archive.store(name, body, received_at=datetime.now(UTC), source_id=source_id).as_posix()


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)

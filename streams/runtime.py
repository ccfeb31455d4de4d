"""Resolve where the broker and database are: the configured URLs, or (only when
``settings.embedded`` allows it: the demo, development) embedded ones started here.

A missing URL is otherwise a start-up error naming the variable: a production process whose
QUANTRAC_DATABASE_URL was misspelt must not quietly store readings in a local database."""

from __future__ import annotations

import difflib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from core.settings import Settings
from streams.embedded import EmbeddedBroker, EmbeddedPostgres

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent  # quantrac_cli.py lives here


class MissingServiceError(RuntimeError):
    """A broker or database URL is unset and embedded services are not allowed."""


URL_FIELDS = {"kafka_url": "the Kafka broker", "database_url": "the database"}


def require_urls(
    settings: Settings,
    fields: tuple[str, ...] = tuple(URL_FIELDS),
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Refuse (MissingServiceError) when one of ``fields`` is unset and ``settings.embedded``
    is off; the message names each variable and any set QUANTRAC_* name that looks misspelt."""
    if settings.embedded:
        return
    urls = {"kafka_url": settings.kafka_url, "database_url": settings.database_url}
    missing = [f for f in fields if not urls[f]]
    if not missing:
        return
    known = {f"QUANTRAC_{n.upper()}" for n in Settings.model_fields}
    stray = [k for k in environ if k.startswith("QUANTRAC_") and k not in known]
    lines = []
    for field in missing:
        var = f"QUANTRAC_{field.upper()}"
        line = f"{var} is not set: no URL for {URL_FIELDS[field]}"
        near = difflib.get_close_matches(var, stray, n=1, cutoff=0.8)
        if near:
            line += f" ({near[0]} is set, but is no setting: did you mean {var}?)"
        lines.append(line)
    lines.append(
        "set it, or QUANTRAC_EMBEDDED=true to start embedded services (development only; "
        "`quantrac demo` does)"
    )
    raise MissingServiceError("\n".join(lines))


@contextmanager
def services(settings: Settings) -> Iterator[Settings]:
    """Yield settings with both URLs set; the unset ones are started embedded if
    ``settings.embedded`` allows it, else MissingServiceError."""
    require_urls(settings)
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

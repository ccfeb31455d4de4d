"""Resolve where the broker and database are: configured URLs, or the embedded default."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from streams.embedded import EmbeddedBroker, EmbeddedPostgres
from streams.settings import Settings

log = logging.getLogger(__name__)


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
    """Environment for a child process that must use the same broker and database."""
    import os

    env = dict(os.environ)
    env["QUANTRAC_KAFKA_URL"] = settings.kafka_url or ""
    env["QUANTRAC_DATABASE_URL"] = settings.database_url or ""
    env["QUANTRAC_DATA_DIR"] = str(settings.data_dir)
    env["QUANTRAC_TOPIC_PREFIX"] = settings.topic_prefix
    env["QUANTRAC_APP_ID"] = settings.app_id
    return env

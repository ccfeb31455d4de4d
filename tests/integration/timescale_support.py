"""A real TimescaleDB for the timescale-flavour tests: the clusters tests/timescale/setup.sh
builds from the vendored source and starts (``eval "$(tests/timescale/setup.sh)"``; .ci/run does).

``QUANTRAC_TEST_TIMESCALE_URL`` is a cluster with timescaledb preloaded,
``QUANTRAC_TEST_TIMESCALE_NOPRELOAD_URL`` one with the extension installed but not preloaded.
Without them the tests skip, saying why; with CI=true that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDORED = ROOT.parent / "shared" / "vendor" / "timescaledb-2.28.3.tar.gz"


def server_url(variable: str) -> str:
    url = os.environ.get(variable)
    if url:
        return url
    if VENDORED.exists():
        why = f'{variable} is not set: run eval "$(tests/timescale/setup.sh)" (builds {VENDORED})'
    else:
        why = f"no TimescaleDB: its vendored source {VENDORED} is not on this machine"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI=true: a missing service is a failure)")
    pytest.skip(why)


@contextmanager
def fresh_database(admin: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def timescale_url() -> Iterator[str]:
    """A fresh database on the cluster with timescaledb preloaded."""
    with fresh_database(server_url("QUANTRAC_TEST_TIMESCALE_URL")) as url:
        yield url


@pytest.fixture
def timescale_not_preloaded_url() -> Iterator[str]:
    """A fresh database on a cluster where timescaledb is available but not preloaded."""
    with fresh_database(server_url("QUANTRAC_TEST_TIMESCALE_NOPRELOAD_URL")) as url:
        yield url

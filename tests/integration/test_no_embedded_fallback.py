"""No silent embedded fallback: a process with no broker or database URL refuses to start,
naming the variable, unless embedded services are explicitly allowed (``quantrac demo``,
QUANTRAC_EMBEDDED). Real ``quantrac`` processes; they exit before connecting to anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from streams.runtime import MissingServiceError, require_urls

ROOT = Path(__file__).resolve().parents[2]
# A well-formed URL with a non-placeholder password (streams/secret_check.py) nobody listens on.
DB_URL = "postgresql://quantrac:Vq7-unused-9fK2@127.0.0.1:9/quantrac"


def run(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("QUANTRAC_")}
    return subprocess.run(
        [sys.executable, "-m", "quantrac_cli", *argv],
        env={**base, "QUANTRAC_DATA_DIR": str(tmp_path / "var"), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("argv", [["worker"], ["gateway"], ["console"], ["db", "migrate"]])
def test_no_urls_exits_2_naming_both_variables(tmp_path: Path, argv: list[str]) -> None:
    done = run(tmp_path, *argv)
    assert done.returncode == 2, done.stderr
    assert "QUANTRAC_KAFKA_URL is not set" in done.stderr
    assert "QUANTRAC_DATABASE_URL is not set" in done.stderr
    assert "QUANTRAC_EMBEDDED=true" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "var" / "pg").exists()  # no embedded database was started


def test_a_misspelt_variable_is_named_with_the_one_meant(tmp_path: Path) -> None:
    done = run(
        tmp_path,
        "worker",
        QUANTRAC_KAFKA_ULR="kafka://127.0.0.1:9",
        QUANTRAC_DATABASE_URL=DB_URL,
    )
    assert done.returncode == 2, done.stderr
    assert (
        "QUANTRAC_KAFKA_URL is not set: no URL for the Kafka broker (QUANTRAC_KAFKA_ULR is set, "
        "but is no setting: did you mean QUANTRAC_KAFKA_URL?)"
    ) in done.stderr
    assert "QUANTRAC_DATABASE_URL" not in done.stderr  # that one is set


def test_report_without_a_database_exits_2(tmp_path: Path) -> None:
    argv = ["report", "compliance", "--source", "HD-NT-01", "--period", "2026-01"]
    done = run(tmp_path, *argv, "--format", "csv", "-o", str(tmp_path / "r.csv"))
    assert done.returncode == 2, done.stderr
    assert "QUANTRAC_DATABASE_URL is not set" in done.stderr
    assert "QUANTRAC_KAFKA_URL" not in done.stderr  # a report needs no broker
    assert not (tmp_path / "var" / "pg").exists()


def test_embedded_allowed_or_urls_set_pass() -> None:
    require_urls(Settings(kafka_url=None, database_url=None, embedded=True), environ={})
    require_urls(Settings(kafka_url="kafka://k:9092", database_url=DB_URL), environ={})
    with pytest.raises(MissingServiceError, match="QUANTRAC_DATABASE_URL is not set"):
        require_urls(Settings(kafka_url="kafka://k:9092", database_url=None), environ={})

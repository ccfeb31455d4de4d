"""``quantrac report KIND`` as real sub-commands (issue 21): each kind has its own --help with
only its options; a report written from the command line prints its path on stdout and one
summary line on stderr (progress only on a terminal)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_reports import NT, insert_dataset

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "quantrac_cli", *args],
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def test_each_report_kind_has_its_own_help() -> None:
    top = cli("report", "--help")
    assert top.returncode == 0, top.stderr
    for kind in ("compliance", "air-quality", "province", "export", "evidence"):
        assert kind in top.stdout.decode()
    options = {
        "compliance": ({"--source", "--period", "--format", "--lang"}, {"--violation"}),
        "province": ({"--period", "--format"}, {"--source", "--violation"}),
        "export": ({"--source", "--period", "{csv,xlsx}"}, {"--violation", "pdf"}),
        "evidence": ({"--violation", "--output"}, {"--period", "--source", "--format"}),
    }
    for kind, (present, absent) in options.items():
        r = cli("report", kind, "--help")
        text = r.stdout.decode()
        assert r.returncode == 0 and f"usage: quantrac report {kind}" in text, text
        assert all(o in text for o in present), (kind, text)
        assert not any(o in text for o in absent), (kind, text)
    r = cli("report", "nonsense")
    assert r.returncode == 2 and "invalid choice: 'nonsense'" in r.stderr.decode()


def test_report_prints_path_on_stdout_and_a_summary_on_stderr(
    database_url: str, tmp_path: Path
) -> None:
    insert_dataset(database_url)
    env = dict(os.environ, QUANTRAC_DATABASE_URL=database_url, QUANTRAC_DATA_DIR=str(tmp_path))
    out = tmp_path / "c.xlsx"
    r = cli(
        "report", "compliance", "--source", NT, "--period", "2026-10", "--format", "xlsx",
        "-o", str(out), env=env,
    )  # fmt: skip
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert r.stdout.decode().strip() == str(out)
    size_kb = out.stat().st_size / 1024
    summary = [line for line in err.splitlines() if line.startswith("report compliance:")]
    assert len(summary) == 1, err
    assert re.fullmatch(
        rf"report compliance: wrote {re.escape(str(out))} \({size_kb:.0f} kB\) \([0-9.]+ s\)",
        summary[0],
    ), summary
    assert "\r" not in err  # no terminal: no progress line redrawn


def test_secrets_check_lists_as_json_without_values(tmp_path: Path) -> None:
    import json
    import shutil

    env_dir = tmp_path / "env"
    shutil.copytree(ROOT / "deploy" / "env", env_dir)
    r = cli("secrets", "check", "--env-dir", str(env_dir), "--json")
    assert r.returncode == 1, r.stderr
    weak = json.loads(r.stdout)
    assert {"file": "timescaledb.env", "key": "POSTGRES_PASSWORD", "how": "value"} in weak
    assert "CHANGE-ME" not in r.stdout.decode()  # names only, never the values
    assert cli("secrets", "init", "--env-dir", str(env_dir)).returncode == 0
    r = cli("secrets", "check", "--env-dir", str(env_dir), "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stdout


def test_scheduler_bad_inputs_are_one_line_and_exit_2(tmp_path: Path) -> None:
    env = dict(os.environ, QUANTRAC_DATA_DIR=str(tmp_path / "var"))
    env.pop("QUANTRAC_DATABASE_URL", None)
    for args, named in (
        (("--at", "2026-11-01"), "offset"),
        (("--at", "first of november"), "--at"),
        (("--source", "HD-NT-01,NOPE-01"), "NOPE-01"),
    ):
        r = cli("scheduler", "--once", *args, env=env)
        err = r.stderr.decode()
        assert r.returncode == 2 and named in err, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    r = cli("scheduler", "--once", env=env)  # no database and embedded not allowed
    assert r.returncode == 2 and "QUANTRAC_DATABASE_URL is not set" in r.stderr.decode()
    assert not (tmp_path / "var" / "pg").exists()  # no embedded database was started

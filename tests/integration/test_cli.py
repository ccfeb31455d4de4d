"""The command line as people use it (issue 21): clear one-line errors with exit 2 instead of
tracebacks, a closed pipe that is no error, ``--version``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None):
    return subprocess.run(
        [sys.executable, "-m", "quantrac_cli", *args],
        capture_output=True,
        input=stdin,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_closed_pipe_is_no_traceback() -> None:
    # `quantrac stations | head -1`: the reader is gone before the table is written
    p = subprocess.Popen(
        [sys.executable, "-m", "quantrac_cli", "stations"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_bad_inputs_are_one_line_and_exit_2(tmp_path: Path) -> None:
    env = dict(os.environ, QUANTRAC_DATA_DIR=str(tmp_path))
    env.pop("QUANTRAC_DATABASE_URL", None)
    cases = [
        (("report", "compliance", "--source", "HD-NT-01", "--period", "2026-13"), "period"),
        (("report", "compliance", "--source", "NO-SUCH-01", "--period", "2026-10"), "NO-SUCH-01"),
        (("report", "export", "--source", "HD-NT-01,NOPE", "--period", "2026-10"), "NOPE"),
        (("limits", "NO-SUCH-01"), "NO-SUCH-01"),
        (("limits", "HD-NT-01", "--at", "tomorrow"), "--at"),
    ]
    for args, named in cases:
        r = cli(*args, env=env)
        err = r.stderr.decode()
        assert r.returncode == 2, (args, err)
        assert "Traceback" not in err, (args, err)
        assert named in err and len(err.strip().splitlines()) == 1, (args, err)


def test_version() -> None:
    from importlib.metadata import version

    r = cli("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == f"quantrac {version('quantrac')}"

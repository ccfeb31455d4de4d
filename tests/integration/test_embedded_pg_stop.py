"""The embedded PostgreSQL stops when its owner stops, even after an earlier owner was killed
hard (issue 21): pgserver kept the killed process in its handle list, so every later owner
thought the server still in use and left it running. Real processes, real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.embedded import HANDLES_FILE

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

# An owner as the demo is one: starts the server on a data dir, says so, then waits or stops.
OWNER = """
import sys, time
from pathlib import Path
from streams.embedded import EmbeddedPostgres
pg = EmbeddedPostgres(Path(sys.argv[1])).start()
print("up", flush=True)
if sys.argv[2] == "wait":
    time.sleep(600)
pg.stop()
print("stopped", flush=True)
"""


def _running(pid: int) -> bool:
    try:  # a zombie has exited; only its parent's reaping is left
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _postmaster(data: Path) -> int:
    return int((data / "postmaster.pid").read_text().splitlines()[0])


def _owner(data: Path, mode: str) -> subprocess.Popen[str]:
    with open(data.parent / f"{mode}.log", "ab") as err:  # warnings stay out of stdout
        return subprocess.Popen(
            [sys.executable, "-c", OWNER, str(data), mode],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


def test_server_stops_with_its_owner_after_a_killed_one(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    first = _owner(data, "wait")
    server = 0
    try:
        assert first.stdout is not None
        line = first.stdout.readline().strip()
        assert line == "up", (tmp_path / "wait.log").read_text()
        server = _postmaster(data)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        # the premise: the killed owner's server runs on, its pid still listed as a handle
        assert _running(server)
        assert first.pid in json.loads((data / HANDLES_FILE).read_text())

        second = _owner(data, "stop")
        out, _ = second.communicate(timeout=120)
        assert second.returncode == 0, (tmp_path / "stop.log").read_text()
        assert out.split()[-2:] == ["up", "stopped"], out
        assert _postmaster_gone(server, within_s=15.0), f"postgres {server} still running"
        assert json.loads((data / HANDLES_FILE).read_text()) == []
    finally:
        if first.poll() is None:
            first.kill()
        if server and _running(server):
            os.kill(server, signal.SIGQUIT)  # leave no server behind a failed run


def _postmaster_gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True

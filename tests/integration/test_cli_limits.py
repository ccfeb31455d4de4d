"""``quantrac limits SOURCE --at DATE`` and ``quantrac stations --json`` as people use them
(issue 19): the facility, its permit and status, which regulation applies on the date and why
(the permit, or Circular 06/2025/TT-BTNMT Art. 3 / Circular 45/2024/TT-BTNMT Art. 3.1), and the
table cells nobody could verify shown as UNVERIFIED."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    env.pop("QUANTRAC_REGISTRY_PATH", None)  # the shipped registry
    return subprocess.run(
        [sys.executable, "-m", "quantrac_cli", *args],
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def run(*args: str) -> str:
    r = cli(*args)
    assert r.returncode == 0, r.stderr.decode()
    assert "Traceback" not in r.stderr.decode()
    return r.stdout.decode()


def test_stations_json_lists_38_facilities() -> None:
    data = json.loads(run("stations", "--json"))
    assert len(data["facilities"]) == 38
    assert len(data["sources"]) >= 58
    points = [s for s in data["sources"] if s["facility"]]
    assert len(points) >= 38 and {s["facility"] for s in points} == {
        f["id"] for f in data["facilities"]
    }
    assert run("stations", "check", "stations/registry.yaml").strip().endswith("OK")


def test_new_facility_resolves_the_new_regulations() -> None:
    # NDK-TK is 'new': QCVN 19:2024 from its effective date (Circular 45/2024/TT-BTNMT Art. 3.1)
    out = run("limits", "HD-KT-23", "--at", "2026-06-01")
    assert "facility NDK-TK" in out and "status: new" in out
    assert "on 2026-06-01: QCVN 19:2024/BTNMT, cột B, nhóm 2.4-GT-LE300 — new facility" in out
    assert "Circular 45/2024/TT-BTNMT Art. 3.1" in out
    assert "QCVN_19_2024:B:NOx:1h" in out and "UNVERIFIED" in out
    assert "QCVN_19_2009" not in out
    # KCN-KT is 'new': QCVN 40:2025 (Circular 06/2025/TT-BTNMT Art. 3); its permit's values
    out = run("limits", "HD-NT-17", "--at", "2026-06-01")
    assert "QCVN 40:2025/BTNMT, cột B — new facility" in out
    assert "QCVN_40_2025:B:COD:1h" in out and "118/GPMT-UBND" in out
    assert "QCVN_40_2025:B:pH:1h: no value catalogued — UNVERIFIED" in out


def test_existing_facility_before_and_after_the_transition_end() -> None:
    # Circular 06/2025/TT-BTNMT Art. 3: an existing facility keeps QCVN 40:2011 until 31/12/2031
    before = run("limits", "HD-NT-01", "--at", "2031-12-31")
    assert "status: existing" in before
    assert "existing facility: keeps QCVN 40:2011/BTNMT until 2031-12-31" in before
    assert "QCVN_40_2011:B:COD:1h" in before and "QCVN_40_2025" not in before
    after = run("limits", "HD-NT-01", "--at", "2032-01-01")
    assert "transition for QCVN 40:2011/BTNMT ended 2031-12-31" in after
    assert "QCVN_40_2011" not in after
    assert "QCVN_40_2025:B:COD:1h: no value catalogued — UNVERIFIED" in after
    # Circular 45/2024/TT-BTNMT Art. 3.1, stacks
    stack = run("limits", "HD-KT-01", "--at", "2032-01-01", "--json")
    assert json.loads(stack) == []  # QCVN 19:2024 Bảng 1: every cell a gap, none invented
    stack = run("limits", "HD-KT-01", "--at", "2031-12-31", "--json")
    assert {lim["regulation"] for lim in json.loads(stack)} == {"QCVN_19_2009"}


def test_permit_override_wins_over_the_transition() -> None:
    out = run("limits", "HD-NT-20", "--at", "2026-07-01")
    assert "imposed by the permit from 2026-07-01: GPMT 115/GPMT-UBND" in out
    assert "QCVN_40_2025:A:COD:1h" in out and "QCVN_40_2011" not in out
    out = run("limits", "HD-NT-20", "--at", "2026-06-30")
    assert "existing facility: keeps QCVN 40:2011/BTNMT" in out


def test_limits_that_cannot_be_resolved_are_one_line() -> None:
    r = cli("limits", "HD-KT-23", "--at", "2025-01-01")  # before QCVN 19:2024 existed
    err = r.stderr.decode()
    assert r.returncode == 2 and "Traceback" not in err
    assert "HD-KT-23" in err and "not in force on 2025-01-01" in err
    assert len(err.strip().splitlines()) == 1

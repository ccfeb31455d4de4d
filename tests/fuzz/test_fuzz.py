"""Coverage-guided fuzzing of the hostile-input paths, bounded so that it runs with every test run.

Each harness of ``tests/fuzz`` runs in its own process (libFuzzer owns the process: it exits on
the first finding) for at most ``QUANTRAC_FUZZ_SECONDS`` (default 12) seconds or
``QUANTRAC_FUZZ_RUNS`` inputs, any single input allowed 5 s (longer is a hang), seeded with the
Circular 10 corpus (read in place) and the seeds of :data:`tests.fuzz.common.SEEDS`. The working
directory and the corpus libFuzzer grows are the test's ``tmp_path``; a crash, hang or broken
contract fails the test with the fuzzer's output and the offending input in base64. Locally,
without atheris, the tests skip; in CI (``CI=true``) they fail. What the file and JSON harnesses
produce is also written to a migrated PostgreSQL through the worker's row builders and writer
(:func:`tests.fuzz.common.check_storable`): a row PostgreSQL refuses is a finding.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from storage.migrate import migrate
from tests.fuzz.common import CORPUS, DATABASE_ENV, DICTIONARY, SEEDS

ROOT = Path(__file__).resolve().parents[2]
HARNESSES = ("fuzz_file", "fuzz_json", "fuzz_http")
SECONDS = int(os.environ.get("QUANTRAC_FUZZ_SECONDS", "12"))
RUNS = int(os.environ.get("QUANTRAC_FUZZ_RUNS", "200000"))
INPUT_TIMEOUT_S = 5
MIN_RUNS = 200  # fewer means the harness did not really run
OUTPUT_TAIL = 150  # lines of fuzzer output in a failure message


def _require_atheris() -> None:
    try:
        import atheris  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(f"atheris is required in CI (pip install -e '.[dev]'): {exc}")
        pytest.skip(f"atheris is not installed ({exc}); pip install -e '.[dev]'")


def _stat(output: str, name: str) -> int | None:
    match = re.search(rf"^stat::{name}:\s+(\d+)", output, re.MULTILINE)
    return int(match.group(1)) if match else None


def _findings(artifacts: Path) -> str:
    lines = []
    for path in sorted(artifacts.iterdir()):
        data = path.read_bytes()
        lines.append(f"{path} ({len(data)} bytes), base64:\n{base64.b64encode(data).decode()}")
    return "\n".join(lines) or "(no input saved)"


@pytest.mark.parametrize("harness", HARNESSES)
def test_fuzz(harness: str, tmp_path: Path, database_url: str) -> None:
    _require_atheris()
    migrate(database_url)
    corpus = tmp_path / "corpus"  # first directory: libFuzzer writes what it finds there
    corpus.mkdir()
    for i, seed in enumerate(SEEDS[harness]):
        (corpus / f"seed-{i:02d}").write_bytes(seed)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    command = [
        sys.executable,
        "-m",
        f"tests.fuzz.{harness}",
        f"-runs={RUNS}",
        f"-max_total_time={SECONDS}",
        f"-timeout={INPUT_TIMEOUT_S}",
        "-max_len=4096",
        "-rss_limit_mb=1024",
        f"-dict={DICTIONARY}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        str(corpus),
        str(CORPUS),  # read only: nothing is written into the repository
    ]
    path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), DATABASE_ENV: database_url}
    try:
        proc = subprocess.run(
            command,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # libFuzzer's and the Python traceback, in order
            text=True,
            errors="replace",
            timeout=SECONDS + 120,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        text = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
        pytest.fail(
            f"{harness} did not stop within {SECONDS + 120} s:\n{text[-20000:]}\n"
            f"--- findings ---\n{_findings(artifacts)}",
            pytrace=False,
        )
    output = proc.stdout
    runs = _stat(output, "number_of_executed_units")
    speed = _stat(output, "average_exec_per_sec")
    print(f"{harness}: {runs} inputs, {speed} exec/s, exit {proc.returncode}")
    if proc.returncode != 0 or runs is None or runs < MIN_RUNS:
        tail = "\n".join(output.splitlines()[-OUTPUT_TAIL:])
        reproduce = f"PYTHONPATH={ROOT} {sys.executable} -m tests.fuzz.{harness} <input file>"
        pytest.fail(
            f"{harness}: fuzzer exit {proc.returncode}, {runs} inputs run\n"
            f"--- fuzzer output (last {OUTPUT_TAIL} lines) ---\n{tail}\n"
            f"--- findings ---\n{_findings(artifacts)}\n"
            f"reproduce: {reproduce}",
            pytrace=False,
        )

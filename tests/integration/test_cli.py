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


def _db_env(tmp_path: Path, kafka_url: str, database_url: str) -> dict[str, str]:
    return dict(
        os.environ,
        QUANTRAC_DATA_DIR=str(tmp_path),
        QUANTRAC_KAFKA_URL=kafka_url,
        QUANTRAC_DATABASE_URL=database_url,
    )


def test_users_password_never_from_argv(tmp_path: Path, kafka_url: str, database_url: str) -> None:
    env = _db_env(tmp_path, kafka_url, database_url)
    secret = "a-long-operator-passphrase"
    r = cli("users", "add", "ops", secret, "operator", env=env)  # the old form
    err = r.stderr.decode()
    assert r.returncode == 2 and "never from the command line" in err, err
    assert secret not in err

    r = cli("users", "add", "ops", "operator", env=env, stdin=b"short\n")  # the policy applies
    assert r.returncode == 2 and "at least 12 characters" in r.stderr.decode(), r.stderr
    r = cli("users", "add", "ops", "operator", env=env, stdin=b"")
    assert r.returncode == 2 and "no password on stdin" in r.stderr.decode(), r.stderr

    r = cli("users", "add", "ops", "operator", "--password-stdin", env=env, stdin=secret.encode())
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == "created ops (operator)"

    import psycopg

    from console.auth import verify_password

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE username = 'ops'").fetchone()
    assert row is not None and verify_password(row[0], secret)


def test_users_list_disable_passwd(tmp_path: Path, kafka_url: str, database_url: str) -> None:
    import json

    import psycopg

    from console.auth import verify_password

    env = _db_env(tmp_path, kafka_url, database_url)
    for name, role in (("ana", "admin"), ("reg", "regulator")):
        r = cli("users", "add", name, role, env=env, stdin=f"{name}-long-passphrase\n".encode())
        assert r.returncode == 0, r.stderr

    r = cli("users", "list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    users = {u["username"]: u for u in json.loads(r.stdout)}
    assert users["ana"]["role"] == "admin" and users["reg"]["disabled"] is False
    table = cli("users", "list", env=env).stdout.decode().splitlines()
    assert table[0].split() == ["username", "role", "state", "created_by"]
    assert ["reg", "regulator", "active", "cli"] in [line.split() for line in table]

    assert cli("users", "disable", "reg", env=env).returncode == 0
    r = cli("users", "list", "--json", env=env)
    assert {u["username"]: u["disabled"] for u in json.loads(r.stdout)}["reg"] is True
    r = cli("users", "disable", "nobody", env=env)
    assert r.returncode == 2 and "no user 'nobody'" in r.stderr.decode()

    r = cli("users", "passwd", "ana", env=env, stdin=b"password2024!!\n")  # common: refused
    assert r.returncode == 2 and "too common" in r.stderr.decode(), r.stderr
    r = cli("users", "passwd", "ana", env=env, stdin=b"another-long-passphrase\n")
    assert r.returncode == 0, r.stderr
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE username='ana'").fetchone()
        actions = [a for (a,) in conn.execute("SELECT action FROM audit_log WHERE actor = 'cli'")]
    assert row is not None and verify_password(row[0], "another-long-passphrase")
    assert {"user_created", "user_disabled", "password_reset"} <= set(actions)


def test_port_in_use_names_port_and_setting(
    tmp_path: Path, kafka_url: str, database_url: str
) -> None:
    import socket

    env = _db_env(tmp_path, kafka_url, database_url)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        for command, setting in (
            ("worker", "QUANTRAC_WEB_PORT"),
            ("console", "QUANTRAC_CONSOLE_PORT"),
            ("gateway", "QUANTRAC_GATEWAY_HTTP_PORT"),
            ("gateway", "QUANTRAC_GATEWAY_FTP_PORT"),
        ):
            with socket.socket() as spare:  # the command's other ports: free ones
                spare.bind(("127.0.0.1", 0))
                free = str(spare.getsockname()[1])
            others = {"QUANTRAC_GATEWAY_HTTP_PORT": free, "QUANTRAC_GATEWAY_FTP_PORT": free}
            r = cli(command, env=env | others | {setting: str(port)})
            err = r.stderr.decode()
            assert r.returncode == 2, (command, setting, err[-2000:])
            assert f"port {port}" in err and setting in err, (command, err[-2000:])
            assert "Traceback" not in err, err


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:  # a zombie (state Z) has exited; only its parent's reaping is left
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_demo_children_die_with_it_on_sigkill(
    tmp_path: Path, kafka_url: str, database_url: str
) -> None:
    import signal
    import socket
    import time

    from tests.conftest import wait_until

    ports = []
    for _ in range(4):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(str(s.getsockname()[1]))
    env = _db_env(tmp_path, kafka_url, database_url) | {
        "QUANTRAC_WEB_PORT": ports[0],
        "QUANTRAC_CONSOLE_PORT": ports[1],
        "QUANTRAC_GATEWAY_HTTP_PORT": ports[2],
        "QUANTRAC_GATEWAY_FTP_PORT": ports[3],
    }
    with open(tmp_path / "demo.log", "wb") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "quantrac_cli", "demo", "--backfill-hours", "0.1"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    children: set[int] = set()
    try:

        def started() -> bool:
            children.update(_children(demo.pid))
            return len(children) >= 4

        wait_until(started, timeout=90, message=lambda: f"the demo's children: {children}")
        demo.send_signal(signal.SIGKILL)
        demo.wait(10)
        deadline = time.monotonic() + 30
        while any(_running(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [c for c in children if _running(c)]
        assert not left, ((tmp_path / "demo.log").read_text()[-3000:], left)
    finally:
        for c in children:
            if _running(c):
                os.kill(c, signal.SIGKILL)
        if demo.poll() is None:
            demo.kill()

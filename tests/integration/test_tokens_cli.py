"""``quantrac tokens create|list|revoke`` as an admin uses it (issue 20), on the real PostgreSQL:
the token is printed once and works, only its hash is stored, bad input is one line and exit 2,
every change is audited as ``cli``."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from storage import api_tokens as tk
from tests.integration.test_cli import cli

pytestmark = pytest.mark.integration


def _env(tmp_path: Path, kafka_url: str, database_url: str) -> dict[str, str]:
    return dict(
        os.environ,
        QUANTRAC_DATA_DIR=str(tmp_path),
        QUANTRAC_KAFKA_URL=kafka_url,
        QUANTRAC_DATABASE_URL=database_url,
    )


def test_tokens_create_list_revoke(tmp_path: Path, kafka_url: str, database_url: str) -> None:
    env = _env(tmp_path, kafka_url, database_url)
    r = cli("tokens", "create", "portal", "--scope", "read", "--expires", "90", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    secret = lines[-1]
    token_id = tk.parse_id(secret)
    assert token_id is not None and lines[0].startswith(f"created token {token_id} (portal: read;")
    r = cli(
        "tokens", "create", "logger", "--scope", "ingest", "--sources", "HD-KK-01,HD-KT-01", env=env
    )
    assert r.returncode == 0, r.stderr
    ingest_id = tk.parse_id(r.stdout.decode().splitlines()[-1])

    listed = json.loads(cli("tokens", "list", "--json", env=env).stdout)
    by_id = {t["id"]: t for t in listed}
    assert by_id[token_id]["scope"] == "read" and by_id[token_id]["state"] == "active"
    expires = datetime.fromisoformat(by_id[token_id]["expires_at"])
    assert timedelta(days=89) < expires - datetime.now(UTC) <= timedelta(days=90)
    assert by_id[ingest_id]["sources"] == ["HD-KK-01", "HD-KT-01"]
    assert by_id[ingest_id]["expires_at"] is None
    assert secret not in json.dumps(listed)
    table = cli("tokens", "list", env=env).stdout.decode().splitlines()
    assert table[0].split() == ["id", "name", "scope", "sources", "state", "expires", "last_used"]

    r = cli("tokens", "revoke", token_id, env=env)
    assert r.returncode == 0 and f"revoked token {token_id}" in r.stdout.decode()
    r = cli("tokens", "revoke", token_id, env=env)
    assert r.returncode == 2 and "already revoked" in r.stderr.decode()
    listed = json.loads(cli("tokens", "list", "--json", env=env).stdout)
    assert {t["id"]: t["state"] for t in listed}[token_id] == "revoked"

    with psycopg.connect(database_url) as conn:
        found = tk.authenticate(conn, secret)
        stored = conn.execute("SELECT string_agg(api_tokens::text, ' ') FROM api_tokens").fetchone()
        audit = conn.execute(
            "SELECT action, target FROM audit_log WHERE actor = 'cli' ORDER BY id"
        ).fetchall()
    assert found is not None and found.verdict(datetime.now(UTC)) is tk.Verdict.REVOKED
    assert stored is not None and secret not in stored[0]
    assert audit == [
        ("token_created", f"token:{token_id}"),
        ("token_created", f"token:{ingest_id}"),
        ("token_revoked", f"token:{token_id}"),
    ]


def test_tokens_bad_input_is_one_line_exit_2(
    tmp_path: Path, kafka_url: str, database_url: str
) -> None:
    env = _env(tmp_path, kafka_url, database_url)
    cases = [
        (("tokens", "create", "x", "--scope", "ingest"), "--sources"),
        (("tokens", "create", "x", "--scope", "ingest", "--sources", "HD-XX-99"), "HD-XX-99"),
        (("tokens", "create", "x", "--scope", "read", "--sources", "HD-KK-01"), "ingest tokens"),
        (("tokens", "create", "x", "--scope", "read", "--expires", "0"), "expires"),
        (("tokens", "create", "x"), "--scope"),
        (("tokens", "create", "--scope", "read"), "usage"),
        (("tokens", "revoke"), "usage"),
        (("tokens", "revoke", "nope1234"), "no such token"),
        (("tokens", "list", "--scope", "read"), "options of `tokens create`"),
    ]
    for args, named in cases:
        r = cli(*args, env=env)
        err = r.stderr.decode()
        assert r.returncode == 2, (args, err)
        assert "Traceback" not in err, (args, err)
        last = err.strip().splitlines()[-1]  # after the migration's log lines, if any
        assert last.startswith("quantrac tokens: ") and named in last, (args, err)

"""No default secrets: the start-up check (streams/secret_check.py) and `quantrac secrets`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from quantrac_cli import main
from streams.secret_check import (
    SecretError,
    check_secrets,
    init_env_files,
    is_placeholder,
    placeholders_in,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_ENV = ROOT / "deploy" / "env"


@pytest.mark.parametrize(
    "value", ["CHANGE-ME", "changeme", "Change_Me", "CHANGEME-please", "<password>", "xxx", "TODO"]
)
def test_placeholders(value: str) -> None:
    assert is_placeholder(value)


@pytest.mark.parametrize("value", ["8DTv-cDSS4rDy_gpYiSr", "quantrac", "admin-secret-2026"])
def test_real_values_are_not_placeholders(value: str) -> None:
    assert not is_placeholder(value)


@pytest.mark.parametrize(
    ("field", "url", "problem"),
    [
        ("database_url", "postgresql://quantrac:CHANGE-ME@db:5432/q", "placeholder"),
        ("database_url", "postgresql://quantrac@db:5432/q", "empty"),
        ("database_url", "postgresql://quantrac:@10.0.0.5/q", "empty"),
        ("database_url", "host=db user=quantrac password=changeme dbname=q", "placeholder"),
        ("mqtt_url", "mqtt://gateway:PASSWORD@127.0.0.1:1883", "placeholder"),
        ("mqtt_url", "mqtt://gateway@127.0.0.1:1883", "empty"),
    ],
)
def test_refuses_an_empty_or_placeholder_secret_naming_the_variable(
    field: str, url: str, problem: str
) -> None:
    with pytest.raises(SecretError) as caught:
        check_secrets(Settings.model_validate({field: url}))
    message = str(caught.value)
    assert f"QUANTRAC_{field.upper()}" in message and problem in message
    assert "CHANGE-ME" not in message and "changeme" not in message  # never the value


@pytest.mark.parametrize(
    "settings",
    [
        Settings(),  # embedded broker and database: nothing configured, nothing to check
        Settings(database_url="postgresql://postgres:@/postgres?host=/tmp/pg"),  # socket
        Settings(database_url="postgresql://quantrac:Xk2-real-secret@db:5432/q"),
        Settings(mqtt_url="mqtt://127.0.0.1:1883"),  # anonymous: no secret
        Settings(mqtt_url="mqtt://gateway:Xk2-real-secret@127.0.0.1:1883"),
    ],
)
def test_accepts_real_secrets_and_the_embedded_default(settings: Settings) -> None:
    check_secrets(settings)


def test_a_process_refuses_to_start_on_the_shipped_placeholder() -> None:
    env = {
        **os.environ,
        "QUANTRAC_DATABASE_URL": "postgresql://quantrac:CHANGE-ME@timescaledb:5432/quantrac",
    }
    out = subprocess.run(
        [sys.executable, "-m", "quantrac_cli", "db", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "QUANTRAC_DATABASE_URL" in out.stderr and "placeholder" in out.stderr


def _env_copy(tmp_path: Path) -> Path:
    env_dir = tmp_path / "env"
    shutil.copytree(SHIPPED_ENV, env_dir)
    return env_dir


def _values(env_dir: Path) -> dict[str, str]:
    out = {}
    for path in env_dir.glob("*.env"):
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                out[key] = value
    return out


DB_AND_GRAFANA = {"GF_SECURITY_ADMIN_PASSWORD", "POSTGRES_PASSWORD", "QUANTRAC_DATABASE_URL"}


def test_the_shipped_env_files_hold_placeholders_only() -> None:
    assert {s.key for s in placeholders_in(SHIPPED_ENV)} >= DB_AND_GRAFANA


def test_secrets_init_fills_placeholders_once_and_prints_no_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_dir = _env_copy(tmp_path)
    before = _values(env_dir)
    to_set = {s.key for s in placeholders_in(env_dir)}
    assert main(["secrets", "init", "--env-dir", str(env_dir)]) == 0
    printed = capsys.readouterr().out
    after = _values(env_dir)
    db_password = after["POSTGRES_PASSWORD"]
    assert len(db_password) >= 32 and not is_placeholder(db_password)
    assert after["QUANTRAC_DATABASE_URL"] == (
        f"postgresql://quantrac:{db_password}@timescaledb:5432/quantrac"
    )
    assert len(after["GF_SECURITY_ADMIN_PASSWORD"]) >= 32
    assert after["GF_SECURITY_ADMIN_PASSWORD"] != db_password
    changed = {k for k in after if after[k] != before[k]}
    assert changed == to_set and changed >= DB_AND_GRAFANA
    for key in sorted(changed):
        assert key in printed
        assert after[key] not in printed  # names only
    assert db_password not in printed and after["GF_SECURITY_ADMIN_PASSWORD"] not in printed
    assert (env_dir / "grafana.env").stat().st_mode & 0o077 == 0
    check_secrets(Settings(database_url=after["QUANTRAC_DATABASE_URL"]))
    # idempotent: a second run changes nothing
    assert main(["secrets", "init", "--env-dir", str(env_dir)]) == 0
    assert _values(env_dir) == after
    assert "nothing changed" in capsys.readouterr().out
    assert main(["secrets", "check", "--env-dir", str(env_dir)]) == 0


def test_secrets_init_reuses_a_database_password_already_set(tmp_path: Path) -> None:
    env_dir = _env_copy(tmp_path)
    path = env_dir / "timescaledb.env"
    path.write_text(
        path.read_text().replace("POSTGRES_PASSWORD=CHANGE-ME", "POSTGRES_PASSWORD=Kept-2026-x")
    )
    init_env_files(env_dir)
    after = _values(env_dir)
    assert after["POSTGRES_PASSWORD"] == "Kept-2026-x"
    assert ":Kept-2026-x@timescaledb" in after["QUANTRAC_DATABASE_URL"]


def test_secrets_init_refuses_two_different_database_passwords(tmp_path: Path) -> None:
    env_dir = _env_copy(tmp_path)
    for name, old, new in [
        ("timescaledb.env", "POSTGRES_PASSWORD=CHANGE-ME", "POSTGRES_PASSWORD=one-real-one"),
        ("production.env", "quantrac:CHANGE-ME@", "quantrac:another-real-one@"),
    ]:
        path = env_dir / name
        path.write_text(path.read_text().replace(old, new))
    with pytest.raises(SecretError, match="differs"):
        init_env_files(env_dir)
    assert main(["secrets", "check", "--env-dir", str(env_dir)]) == 1  # Grafana's still to set

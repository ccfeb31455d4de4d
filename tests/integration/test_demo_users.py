"""`quantrac demo` creates its public demo logins on the embedded database only."""

from __future__ import annotations

import psycopg
import pytest

from console.auth import create_user, verify_password
from core.settings import Settings
from quantrac_demo import DEMO_USERS, ensure_demo_users
from storage.migrate import migrate

pytestmark = pytest.mark.integration


def users(conninfo: str) -> dict[str, str]:
    with psycopg.connect(conninfo) as conn:
        return dict(conn.execute("SELECT username, password_hash FROM users").fetchall())


def test_no_demo_users_on_a_configured_database(database_url: str) -> None:
    migrate(database_url)
    configured = Settings(database_url=database_url)  # someone's real database
    assert ensure_demo_users(configured, database_url) is False
    assert users(database_url) == {}


def test_demo_users_on_the_embedded_database_with_the_printed_passwords(database_url: str) -> None:
    migrate(database_url)
    # an earlier demo run left a demo user with an older password; a real user stays as it is
    create_user(database_url, "operator", "an-older-demo-password", "operator", created_by="demo")
    create_user(database_url, "ops-lead", "tram-quan-trac-2026", "admin")
    embedded = Settings(database_url=None)  # nothing configured: the runtime started it
    assert ensure_demo_users(embedded, database_url) is True
    assert ensure_demo_users(embedded, database_url) is True  # a second start is fine
    stored = users(database_url)
    for username, password, _ in DEMO_USERS:
        assert verify_password(stored[username], password), username
    assert verify_password(stored["ops-lead"], "tram-quan-trac-2026")

"""Manual validation on a source's page in headless Chromium (issue 21): an operator's refused
request shows why, an invalidation in local time is stored and listed, its Restore button
restores the same period; a regulator sees the list without the form; all under the console's
CSP, against the real broker and PostgreSQL. Screenshots are kept in the test's tmp dir."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi import FastAPI
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from console.app import create_app
from core.settings import Settings
from core.topics import ensure_topics
from tests.e2e.test_console_browser import browser, csp_violations, log_in, shot
from tests.integration.test_console_api import db, server  # fixtures: db → app → server

__all__ = ["browser", "db", "server"]

pytestmark = pytest.mark.integration

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
PAGE = "/sources/HD-KK-01?lang=en"


@pytest.fixture
def app(db: str, settings: Settings) -> FastAPI:
    """The console with the test's broker and topics: a decision is produced to readings.raw."""
    ensure_topics(settings)
    return create_app(settings.model_copy(update={"database_url": db}), poll_interval_s=0.2)


def snap(driver: WebDriver, folder: Path, name: str) -> None:
    section = driver.find_element(By.ID, "manual-validation")
    driver.execute_script("arguments[0].scrollIntoView()", section)
    shot(driver, folder, name)


def fill(driver: WebDriver, start: datetime, end: datetime, reason: str, note: str) -> None:
    form = driver.find_element(By.ID, "mv-form")
    Select(form.find_element(By.NAME, "parameter")).select_by_value("PM2.5")
    for name, at in (("start", start), ("end", end)):  # datetime-local: local wall time
        field = form.find_element(By.NAME, name)
        driver.execute_script(
            "arguments[0].value = arguments[1]", field, at.strftime("%Y-%m-%dT%H:%M")
        )
    Select(form.find_element(By.NAME, "reason")).select_by_value(reason)
    box = form.find_element(By.NAME, "note")
    box.clear()
    box.send_keys(note)
    form.find_element(By.ID, "mv-invalidate").click()


def test_an_operator_invalidates_then_restores_a_period(
    browser: WebDriver, server: str, db: str, tmp_path: Path
) -> None:
    log_in(browser, server, "op")
    browser.get(server + PAGE)
    now = datetime.now(LOCAL).replace(second=0, microsecond=0)
    start, end = now - timedelta(hours=3), now - timedelta(hours=1)

    fill(browser, start, end, "other", "")  # 'other' needs a note: refused, nothing stored
    error = WebDriverWait(browser, 10).until(ec.visibility_of_element_located((By.ID, "mv-error")))
    assert error.text.startswith("422 ") and "reason 'other' needs a note" in error.text
    snap(browser, tmp_path, "01-refused")

    fill(browser, start, end, "maintenance", "filter changed on site")
    row = WebDriverWait(browser, 10).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#mv-list tr.mv-row-invalidate"))
    )
    assert "Maintenance" in row.text and "filter changed on site" in row.text
    assert "Pending" in row.text and "PM2.5" in row.text
    assert f"{start:%d/%m/%Y %H:%M} – {end:%d/%m/%Y %H:%M}" in row.text
    with psycopg.connect(db) as conn:
        stored = conn.execute(
            "SELECT parameter, period_start, period_end, action FROM manual_validations"
        ).fetchall()
    assert stored == [("PM2.5", start.astimezone(UTC), end.astimezone(UTC), "invalidate")]
    snap(browser, tmp_path, "02-invalidated")

    row.find_element(By.CSS_SELECTOR, "button.mv-restore").click()
    restored = WebDriverWait(browser, 10).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#mv-list tr.mv-row-restore"))
    )
    assert "Restored" in restored.text and "restores #" in restored.text
    assert browser.find_elements(By.CSS_SELECTOR, "button.mv-restore") == []
    with psycopg.connect(db) as conn:
        last = conn.execute(
            "SELECT parameter, period_start, period_end, action, reason FROM manual_validations"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert last == ("PM2.5", start.astimezone(UTC), end.astimezone(UTC), "restore", "maintenance")
    assert csp_violations(browser) == []
    snap(browser, tmp_path, "03-restored")


def test_a_regulator_sees_the_decisions_but_no_form(
    browser: WebDriver, server: str, db: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO manual_validations (source_id, parameter, period_start, period_end,"
            " action, reason, note, by_user, at, applied_at) VALUES ('HD-KK-01', NULL, %s, %s,"
            " 'invalidate', 'analyser_fault', 'pump failed', 'op', %s, %s)",
            (now - timedelta(hours=6), now - timedelta(hours=5), now, now),
        )
    log_in(browser, server, "reg")
    browser.get(server + PAGE)
    row = browser.find_element(By.CSS_SELECTOR, "#mv-list tr.mv-row-invalidate")
    assert "Analyser fault" in row.text and "All parameters" in row.text
    assert "Applied" in row.text and "pump failed" in row.text
    assert browser.find_elements(By.ID, "mv-form") == []
    assert browser.find_elements(By.CSS_SELECTOR, "button.mv-restore") == []
    assert csp_violations(browser) == []
    snap(browser, tmp_path, "regulator")

"""The console's Forwarding page in headless Chromium (issue 20): an operator follows the nav
link and reads each destination's backlog and last error, under the console's CSP; a
screenshot is kept in the test's tmp dir."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.test_console_browser import browser, csp_violations, log_in, shot
from tests.integration.test_console_api import app, db, server  # fixtures: db → app → server

__all__ = ["app", "browser", "db", "server"]

pytestmark = pytest.mark.integration


def fill_ledger(conninfo: str) -> None:
    """national: 3 files waiting (the oldest archived 40 min ago), the receiver refusing
    connections; city: all delivered."""
    now = datetime.now(UTC)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for i in range(3):
            path = f"2026-12-05/HD-NT-01/HD_NT01_KHI01_2026120510{i:02d}00.txt"
            for dest, state in (("national", "queued"), ("city", "delivered")):
                conn.execute(
                    "INSERT INTO forward_queue (destination, archive_path, source_id, remote_name,"
                    " size_bytes, sha256, archived_at, state, delivered_at) VALUES"
                    " (%s, %s, 'HD-NT-01', %s, 10, 'ab', %s, %s, %s)",
                    (
                        dest,
                        path,
                        path.split("/")[-1],
                        now - timedelta(minutes=40 - i),
                        state,
                        now if state == "delivered" else None,
                    ),
                )
        conn.execute(
            "UPDATE forward_queue SET attempts = 7, last_attempt_at = %s, last_error ="
            " 'connect to 10.0.0.9:21: [Errno 111] Connection refused'"
            " WHERE destination = 'national' AND archive_path LIKE '%%100000.txt'",
            (now,),
        )
        for dest in ("national", "city"):
            conn.execute("INSERT INTO forward_cursor VALUES (%s, %s)", (dest, now.date()))


def test_operator_reads_the_backlog_and_last_error(
    browser: WebDriver, server: str, db: str, tmp_path: Path
) -> None:
    fill_ledger(db)
    log_in(browser, server, "op")
    browser.get(f"{server}/?lang=en")
    browser.find_element(By.CSS_SELECTOR, 'a[href="/forwarding"]').click()
    WebDriverWait(browser, 5).until(ec.presence_of_element_located((By.ID, "forward-destinations")))
    national = browser.find_element(By.CSS_SELECTOR, 'tr[data-destination="national"]')
    assert national.find_element(By.CLASS_NAME, "queued").text == "3"
    assert "Connection refused" in national.find_element(By.CLASS_NAME, "last-error").text
    assert "40 min" in national.text  # the oldest waiting file's age
    city = browser.find_element(By.CSS_SELECTOR, 'tr[data-destination="city"]')
    assert city.find_element(By.CLASS_NAME, "queued").text == "0"
    problems = browser.find_elements(By.CSS_SELECTOR, "#forward-problems tbody tr")
    assert len(problems) == 1 and "HD_NT01_KHI01_20261205100000.txt" in problems[0].text
    assert csp_violations(browser) == []
    shot(browser, tmp_path, "forwarding")

"""The console in headless Chromium (Debian's ``chromium`` + ``chromedriver``, via Selenium).

An operator logs in, a violation appears without reload, gets acknowledged with a note, and the
note shows in the violation's history and, for an admin, in the audit trail (the operator may not
read it); a regulator sees no acknowledge button. Every page runs under the console's strict
Content-Security-Policy: the browser's log must hold no CSP violation. Screenshots of every page
land in the test's tmp dir. The first tests insert the violation into the table the pipeline
writes (the console's polling + SSE path); the last one produces readings to Kafka and runs a
real worker, so the alert comes through the whole pipeline.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from core.settings import Settings
from core.topics import ensure_topics
from tests.conftest import WorkerProcess, wait_until
from tests.integration.test_console_api import (  # fixtures: db → app → server
    PASSWORD,
    _insert_violation,
    app,
    db,
    server,
)
from tests.integration.test_pipeline import _db, _hour0, _noisy, _reading, _send

__all__ = ["app", "db", "server"]

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP reports land there
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(driver: WebDriver, base: str, username: str) -> None:
    driver.get(f"{base}/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 5).until(ec.presence_of_element_located((By.ID, "who")))


def csp_violations(driver: WebDriver) -> list[str]:
    """What the browser refused under the Content-Security-Policy since the last call."""
    assert isinstance(driver, webdriver.Chrome)  # the browser log is Chromium's
    return [
        e["message"]
        for e in driver.get_log("browser")
        if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
    ]


def shot(driver: WebDriver, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), path


def test_operator_sees_live_alert_and_acknowledges(
    browser: WebDriver, server: str, db: str, tmp_path: Path
) -> None:
    log_in(browser, server, "op")
    assert browser.find_elements(By.ID, "v-V-PM25")
    shot(browser, tmp_path, "01-alerts")
    # wait for the SSE hello, so the insert below is a change the feed has not seen
    WebDriverWait(browser, 5).until(
        lambda d: "down" not in (d.find_element(By.ID, "live-status").get_attribute("class") or "")
    )
    with psycopg.connect(db, autocommit=True) as conn:
        _insert_violation(
            conn, ("V-E2E", "exceedance", "HD-KK-01", "SO2", "open", "3-5", 2, 400.0, 100.0)
        )
    row = WebDriverWait(browser, 5).until(
        ec.presence_of_element_located((By.ID, "v-V-E2E"))
    )  # arrived without reload
    shot(browser, tmp_path, "02-alert-arrived")
    row.find_element(By.NAME, "note").send_keys("Đã gọi nhà máy, kiểm tra thiết bị")
    row.find_element(By.CLASS_NAME, "ack-button").click()
    # the row is re-rendered by both the POST answer and the SSE update: re-find it each time
    WebDriverWait(browser, 5, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: "Đã gọi nhà máy" in d.find_element(By.ID, "v-V-E2E").text
    )
    shot(browser, tmp_path, "03-acknowledged")
    assert csp_violations(browser) == []
    browser.get(f"{server}/audit")  # the audit log is the admins' alone
    assert browser.find_elements(By.ID, "audit") == []
    browser.find_element(By.ID, "logout").click()
    log_in(browser, server, "adm")
    browser.get(f"{server}/audit")
    audit = browser.find_element(By.ID, "audit").text
    assert "acknowledge" in audit and "Đã gọi nhà máy, kiểm tra thiết bị" in audit
    shot(browser, tmp_path, "04-audit")
    for name, path in [
        ("05-violation", "/violations/V-E2E"),
        ("06-board", "/board"),
        ("07-source", "/sources/HD-KK-01"),
        ("08-reports", "/reports"),
    ]:
        browser.get(server + path)
        assert browser.find_elements(By.ID, "who"), path
        if path.startswith("/violations/"):  # the episode chart (uPlot) draws the limit
            WebDriverWait(browser, 5).until(
                lambda d: (
                    d.find_element(By.ID, "chart-episode").get_attribute("data-ready") == "true"
                )
            )
            labels = browser.execute_script(
                "return window.qtCharts['chart-episode'].series.map(s => s.label)"
            )
            assert "Giới hạn 100 · TB 1 giờ" in labels, labels
            acks = browser.find_element(By.ID, "acks").text
            assert "op" in acks and "Đã gọi nhà máy, kiểm tra thiết bị" in acks
        if path == "/board":  # the AQI band colour comes from /bands.css, not a style attribute
            aqi = browser.find_element(By.CSS_SELECTOR, "span.aqi")
            assert aqi.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"
        assert csp_violations(browser) == [], path
        shot(browser, tmp_path, name)
    assert len(list(tmp_path.glob("*.png"))) == 8


def test_regulator_has_no_acknowledge_button(
    browser: WebDriver, server: str, tmp_path: Path
) -> None:
    log_in(browser, server, "reg")
    assert browser.find_elements(By.ID, "v-V-PM25")
    assert browser.find_elements(By.CLASS_NAME, "ack-button") == []
    browser.get(f"{server}/violations/V-PM25")
    assert browser.find_elements(By.CLASS_NAME, "ack-button") == []
    shot(browser, tmp_path, "regulator-violation")


def test_exceedance_produced_to_kafka_appears_live_for_the_operator(
    browser: WebDriver,
    server: str,
    db: str,
    settings: Settings,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    """The whole path: readings on Kafka → worker (QA/QC, average, check, persist) → console.

    HD-NT-01's COD limit is QCVN 40:2011 Table 1 row 5 column B × Kq 1.1 × Kf 0.9 = 148.5 mg/L
    (1-h mean); an hour at 230 ± 60 opens one violation (ratio 1.55, Decree 45 band 1.5–2).
    """
    assert settings.database_url == db
    ensure_topics(settings)
    worker.start()
    t0 = _hour0(4)
    _send(settings, [_reading("HD-NT-01", t0, 100.0)])  # warm-up: the worker is consuming
    wait_until(
        lambda: _db(db, "SELECT count(*) FROM readings WHERE source_id = 'HD-NT-01'")[0][0] > 0,
        120,
        message=worker.log,
    )
    log_in(browser, server, "op")
    WebDriverWait(browser, 5).until(
        lambda d: "down" not in (d.find_element(By.ID, "live-status").get_attribute("class") or "")
    )
    episode = t0 + timedelta(hours=1)
    readings = [
        _reading("HD-NT-01", episode + k * timedelta(minutes=5), _noisy(230, k)) for k in range(12)
    ]
    readings.append(_reading("HD-NT-01", episode + timedelta(hours=1), 100.0))  # closes the hour
    sent = time.monotonic()
    _send(settings, readings)
    vid = f"HD-NT-01:COD:QCVN_40_2011:B:COD:1h:{episode:%Y%m%dT%H%MZ}"
    WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, f"v-{vid}")))
    elapsed = time.monotonic() - sent
    shot(browser, tmp_path, "09-kafka-exceedance")
    print(f"\nreadings produced → alert on the operator's page: {elapsed:.2f} s")
    assert elapsed < 5.0, f"the alert took {elapsed:.1f} s to appear"

"""The public page in headless Chromium (issue 20), without logging in.

The database holds the real registry's stations, 24 h of hourly VN_AQI for every ambient-air
station (every Decision 1459 category appears) and a day for every surface-water station
(tests/integration/test_public_page.py seeds it); the console runs under uvicorn on a loopback
port. The browser finds every station on the map and as a card, each air station's category
text and the decision's recommendations, and the 24-hour charts drawn by uPlot; the console's CSP
refuses nothing. Screenshots are kept in tests/artifacts/ (git-ignored; QUANTRAC_TEST_ARTIFACTS
overrides the folder), so CI can publish them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from console.app import create_app
from core.settings import Settings
from tests.e2e.test_console_browser import browser, csp_violations
from tests.integration.test_console_api import serving
from tests.integration.test_public_page import AIR, CURRENT, REGISTRY, WATER, WQI, seed_public
from thresholds.aqi import CATEGORIES, category
from thresholds.aqi_advice import advice_for

__all__ = ["browser"]

pytestmark = pytest.mark.integration

ARTIFACTS = Path(
    os.environ.get("QUANTRAC_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts"
)


@pytest.fixture
def public_server(database_url: str, tmp_path: Path) -> Iterator[str]:
    now = datetime.now(UTC)  # the seed's and the page's: 24 hours even across an hour's turn
    seed_public(database_url, now)
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    app = create_app(settings, poll_interval_s=0.2, clock=lambda: now)
    with serving(app) as base:
        yield base


def full_page_shot(driver: WebDriver, name: str) -> Path:
    """A screenshot of the whole page (the window grown to the document's height)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1400, min(max(height, 1000), 12000))
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    assert path.stat().st_size > 10_000, path  # a page, not a blank image
    return path


def test_public_page_shows_every_station_category_and_advice(
    browser: WebDriver, public_server: str
) -> None:
    browser.delete_all_cookies()
    browser.get(f"{public_server}/public?lang=vi")
    assert browser.current_url == f"{public_server}/public?lang=vi"  # no detour to /login
    assert browser.get_cookies() == []  # nothing set: a cacheable page
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-charts") == "ready"
    )
    for sid in [*AIR, *WATER]:
        card = browser.find_element(By.ID, f"station-{sid}")
        assert REGISTRY.get(sid).name in card.find_element(By.CLASS_NAME, "station-name").text
        assert browser.find_elements(By.ID, f"marker-{sid}"), sid  # on the map
    for sid, aqi in CURRENT.items():
        card = browser.find_element(By.ID, f"station-{sid}")
        info, advice = CATEGORIES[category(aqi)], advice_for(aqi)
        assert card.find_element(By.CLASS_NAME, "aqi-value").text == str(aqi)
        assert card.find_element(By.CLASS_NAME, "aqi-category").text == info.name_vi
        assert advice.general.vi in card.find_element(By.CSS_SELECTOR, ".general").text
        assert advice.sensitive.vi in card.find_element(By.CSS_SELECTOR, ".sensitive").text
        assert advice.health.vi in card.find_element(By.CLASS_NAME, "health").text
        chart = card.find_element(By.CLASS_NAME, "chart")
        assert chart.get_attribute("data-points") == "24", sid
        assert chart.find_elements(By.TAG_NAME, "canvas"), sid  # drawn by uPlot
    for sid, wqi in WQI.items():
        card = browser.find_element(By.ID, f"station-{sid}")
        assert ("—" if wqi is None else str(wqi)) in card.find_element(By.CLASS_NAME, "water").text
    assert csp_violations(browser) == []
    full_page_shot(browser, "public-page-vi")

    browser.get(f"{public_server}/public")  # headless Chromium asks for en-US: English
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-charts") == "ready"
    )
    card = browser.find_element(By.ID, f"station-{AIR[3]}")
    aqi = CURRENT[AIR[3]]
    assert card.find_element(By.CLASS_NAME, "aqi-category").text == (
        CATEGORIES[category(aqi)].name_en
    )
    assert advice_for(aqi).sensitive.en in card.find_element(By.CSS_SELECTOR, ".sensitive").text
    assert csp_violations(browser) == []
    full_page_shot(browser, "public-page-en")

    browser.set_window_size(360, 800)  # a phone, as in the province's app
    browser.get(f"{public_server}/public?lang=vi")
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-charts") == "ready"
    )
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{overflow} px wider than the phone's screen"
    path = ARTIFACTS / "public-page-phone.png"
    assert browser.save_screenshot(str(path)), path

"""The board's sort, search and filter and a source's uPlot chart, in headless Chromium.

The board holds every source of the shipped registry (over 50), synced into the test database as the
worker does. The chart test uses HD-NT-01's six hours of COD (tests/integration/
test_console_charts.py): around 100 mg/L with one valid 400 mg/L, one flagged value, a silent
hour and a 148.5 mg/L limit. The y-axis read from the live uPlot scale must hold 400 (an old
hand-drawn axis stopped at 105); hovering the peak must put 400 in the legend. Screenshots (board,
chart with hover, zoomed chart) are kept in the test's tmp dir under --basetemp, as in
tests/e2e/test_console_browser.py. The browser log must hold no CSP violation.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from stations.registry import load_registry
from storage.sources import sync_sources
from tests.e2e.test_console_browser import browser, csp_violations, log_in, shot
from tests.integration.test_console_api import app, db, server
from tests.integration.test_console_charts import PEAK_AT, insert_cod_series
from thresholds.averaging import LOCAL_TZ

__all__ = ["app", "browser", "db", "server"]

pytestmark = pytest.mark.integration


def visible_rows(driver: WebDriver) -> list[WebElement]:
    return [r for r in driver.find_elements(By.CSS_SELECTOR, "#board tbody tr") if r.is_displayed()]


def column(driver: WebDriver, index: int) -> list[str]:
    return [r.find_elements(By.TAG_NAME, "td")[index].text for r in visible_rows(driver)]


def test_board_sorts_searches_and_filters(
    browser: WebDriver, server: str, db: str, tmp_path: Path
) -> None:
    registry = load_registry()
    sync_sources(db, registry)
    total = len(registry.sources)
    log_in(browser, server, "op")
    browser.get(f"{server}/board?lang=en")
    tools = browser.find_element(By.ID, "board-tools")
    WebDriverWait(browser, 5).until(lambda d: tools.is_displayed())  # shown by board.js
    assert len(visible_rows(browser)) == total > 50

    search = browser.find_element(By.ID, "board-search")
    search.send_keys("phả lại")  # case-insensitive, across id, name and district
    rows = visible_rows(browser)
    assert 0 < len(rows) < total
    assert all("phả lại" in (r.get_attribute("data-search") or "") for r in rows)
    count = browser.find_element(By.ID, "board-count").text
    assert count == f"{len(rows)} / {total} sources shown"
    search.clear()
    search.send_keys(" ")  # an input event after clear(): every row is back
    assert len(visible_rows(browser)) == total

    Select(browser.find_element(By.ID, "board-kind")).select_by_value("wastewater")
    wastewater = visible_rows(browser)
    assert 0 < len(wastewater) < total
    assert {r.get_attribute("data-kind") for r in wastewater} == {"wastewater"}
    Select(browser.find_element(By.ID, "board-state")).select_by_value("online")
    assert [r for r in visible_rows(browser) if r.get_attribute("data-state") != "online"] == []
    Select(browser.find_element(By.ID, "board-state")).select_by_value("offline")
    offline = visible_rows(browser)  # no reading at all: every synced wastewater source
    assert offline and {r.get_attribute("data-state") for r in offline} == {"offline"}
    Select(browser.find_element(By.ID, "board-state")).select_by_value("")
    Select(browser.find_element(By.ID, "board-kind")).select_by_value("")
    assert len(visible_rows(browser)) == total

    header = browser.find_element(By.CSS_SELECTOR, "#board thead th:nth-child(1) button.sort")
    header.click()
    ids = [t.split(" ")[0] for t in column(browser, 0)]
    assert ids == sorted(ids)
    header.click()
    assert [t.split(" ")[0] for t in column(browser, 0)] == sorted(ids, reverse=True)
    th = browser.find_element(By.CSS_SELECTOR, "#board thead th:nth-child(1)")
    assert th.get_attribute("aria-sort") == "descending"
    # VN_AQI, highest first: the one station with an AQI on top, stations without one last
    aqi = browser.find_element(By.CSS_SELECTOR, "#board thead th:nth-child(9) button.sort")
    aqi.click()
    aqi.click()
    top = visible_rows(browser)[0]
    assert top.get_attribute("id") == "s-HD-KK-01"
    assert top.find_element(By.CLASS_NAME, "aqi-name").text == "Poor"  # VN_AQI 123
    assert "Hazardous" in browser.find_element(By.ID, "aqi-legend").text
    assert csp_violations(browser) == []
    shot(browser, tmp_path, "board-sorted-by-aqi")
    search.send_keys("Chí Linh")
    shot(browser, tmp_path, "board-search-chi-linh")
    assert {r.find_elements(By.TAG_NAME, "td")[2].text for r in visible_rows(browser)} == {
        "Chí Linh"
    }


def chart_state(driver: WebDriver, chart_id: str) -> dict[str, Any]:
    """The live uPlot instance's scales and what it was drawn from (static/charts.js)."""
    state: dict[str, Any] = driver.execute_script(
        "const u = window.qtCharts[arguments[0]];"
        "return {ymin: u.scales.y.min, ymax: u.scales.y.max, xmin: u.scales.x.min,"
        " xmax: u.scales.x.max, max: u.qtPayload.max, min: u.qtPayload.min,"
        " start: u.qtPayload.start, end: u.qtPayload.end,"
        " limits: u.qtPayload.limits.map(l => l.value),"
        " visible: Math.max(...u.data.slice(1, 1 + u.qtPayload.series.length)"  # not the limits
        "   .flatMap(s => s.slice(u.valToIdx(u.scales.x.min), u.valToIdx(u.scales.x.max) + 1))"
        "   .filter(v => v !== null && v !== undefined)),"
        " width: u.over.clientWidth, height: u.over.clientHeight,"
        " peakX: u.valToPos(arguments[1], 'x')};",
        chart_id,
        PEAK_AT.timestamp(),
    )
    return state


def test_source_chart_hover_zoom_and_y_range(
    browser: WebDriver, server: str, db: str, tmp_path: Path
) -> None:
    insert_cod_series(db)
    log_in(browser, server, "op")
    browser.get(f"{server}/sources/HD-NT-01?lang=en")
    limit_cell = browser.find_element(By.CSS_SELECTOR, "#latest td.limit")
    assert limit_cell.text == "≤ 148.5 mg/L · 1 h mean unverified"  # Kq/Kf not yet checked
    fig = browser.find_element(By.CSS_SELECTOR, 'section[data-parameter="COD"] figure.qt-chart')
    chart_id = fig.get_attribute("id")
    assert chart_id
    WebDriverWait(browser, 10).until(lambda d: fig.get_attribute("data-ready") == "true")
    s = chart_state(browser, chart_id)
    assert s["max"] == 400.0
    # the y-axis holds the series' maximum, its minimum and the limit line
    assert s["ymin"] <= s["min"] and s["ymax"] >= s["max"] and s["ymax"] >= max(s["limits"])
    assert s["limits"] == [148.5]
    assert (s["xmin"], s["xmax"]) == (s["start"], s["end"])  # the whole 24 h
    # the y ticks are round steps of 1, 2 or 5 × 10^n (no 78.75 / 26.25); read from the axis
    ticks = browser.execute_script("return window.qtCharts[arguments[0]].axes[1]._values", chart_id)
    values = [float(t) for t in ticks]
    steps = {round(b - a, 9) for a, b in pairwise(values)}
    assert len(steps) == 1 and f"{steps.pop():e}"[0] in "125", ticks

    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", fig)
    over = fig.find_element(By.CLASS_NAME, "u-over")
    legend = fig.find_element(By.CLASS_NAME, "u-legend")
    hover_peak(browser, chart_id, over)
    rows = legend_values(legend)
    assert rows["Measured"] == "400"
    assert rows["Limit ≤ 148.5 mg/L · 1 h mean"] == "148.5"
    assert rows["Time"] == PEAK_AT.astimezone(LOCAL_TZ).strftime("%d/%m/%Y %H:%M")
    shot(browser, tmp_path, "source-chart-hover")
    assert fig.screenshot(str(tmp_path / "source-chart-hover-figure.png"))

    # drag over the last tenth (after the peak): the x-axis zooms and the y-axis follows the
    # values in view, still holding the limit line
    s = chart_state(browser, chart_id)
    drag(browser, over, s["width"] * 0.9, s["width"] * 0.99)
    WebDriverWait(browser, 5).until(lambda d: chart_state(d, chart_id)["xmin"] > s["start"] + 3600)
    z = chart_state(browser, chart_id)
    assert z["visible"] < 148.5 <= z["ymax"] < 400 and z["ymin"] <= 0
    shot(browser, tmp_path, "source-chart-zoomed")
    ActionChains(browser).double_click(over).perform()  # back to the whole 24 h
    WebDriverWait(browser, 5).until(lambda d: chart_state(d, chart_id)["xmin"] == s["start"])
    s = chart_state(browser, chart_id)
    drag(browser, over, s["peakX"] - 30, s["peakX"] + 30)  # around the peak
    WebDriverWait(browser, 5).until(lambda d: chart_state(d, chart_id)["xmin"] > s["start"] + 3600)
    hover_peak(browser, chart_id, over)
    z = chart_state(browser, chart_id)
    assert z["ymax"] >= 400 and legend_values(legend)["Measured"] == "400"
    shot(browser, tmp_path, "source-chart-zoomed-peak-hover")
    assert csp_violations(browser) == []


def legend_values(legend: WebElement) -> dict[str, str]:
    """Label → value of uPlot's live legend (below the plot)."""
    return {
        r.find_element(By.CLASS_NAME, "u-label").text: r.find_element(By.CLASS_NAME, "u-value").text
        for r in legend.find_elements(By.CSS_SELECTOR, "tr.u-series")
    }


def hover_peak(driver: WebDriver, chart_id: str, over: WebElement) -> None:
    """Move the real mouse onto the 400 mg/L reading (a pixel either side if rounding missed
    it: at 24 h a reading is under 2 px wide)."""
    s = chart_state(driver, chart_id)
    base = round(s["peakX"] - s["width"] / 2)
    for dx in (0, 1, -1, 2, -2):
        ActionChains(driver).move_to_element_with_offset(over, base + dx, 0).perform()
        if (
            driver.execute_script(
                "const u = window.qtCharts[arguments[0]]; return u.data[0][u.cursor.idx]", chart_id
            )
            == PEAK_AT.timestamp()
        ):
            return
    raise AssertionError(f"the cursor never reached the peak at x={s['peakX']}")


def drag(driver: WebDriver, over: WebElement, x0: float, x1: float) -> None:
    """Drag across the plot from x0 to x1 (pixels from its left edge): uPlot's x zoom."""
    half = over.size["width"] / 2
    ActionChains(driver).move_to_element_with_offset(
        over, round(x0 - half), 0
    ).click_and_hold().move_by_offset(round(x1 - x0), 0).release().perform()

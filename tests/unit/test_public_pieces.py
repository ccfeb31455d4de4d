"""Pure pieces of the public page (issue 20): the Decision 1459 advice file, the map's projection
and tiles, the language choice."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import yaml

from console.i18n import Lang
from console.public import accept_language, with_img_origin
from console.public_map import Marker, project, station_map, tile_origin
from thresholds.aqi import CATEGORIES, AqiCategory
from thresholds.aqi_advice import ADVICE_PATH, AdviceDataError, advice_for, parse_advice


def _data() -> dict[str, Any]:
    data = yaml.safe_load(ADVICE_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_advice_covers_table_1_and_is_flagged() -> None:
    data = _data()
    advice = parse_advice(data)
    assert list(advice) == list(CATEGORIES)
    assert data["verified"] is False and data["translation_en"] == "project"
    assert data["tables"] == {"health": "Mục 3, Bảng 4", "activities": "Mục 3, Bảng 5"}
    # Table 5's merged hazardous cell: one text for both groups
    h = advice[AqiCategory.HAZARDOUS]
    assert h.general == h.sensitive
    assert "khẩu trang" in h.general.vi
    assert advice_for(0).category is AqiCategory.GOOD
    assert advice_for(101).category is AqiCategory.POOR
    assert advice_for(150).category is AqiCategory.POOR
    assert advice_for(151).category is AqiCategory.BAD
    assert advice_for(999).category is AqiCategory.HAZARDOUS  # above the scale: the last row
    # folded YAML lines come out as single-spaced sentences
    assert all("  " not in a.health.vi and "\n" not in a.general.en for a in advice.values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["categories"].pop(), "no advice for hazardous"),
        (lambda d: d["categories"][1].update(high=99), "differs from Table 1"),
        (lambda d: d["categories"][2].update(key="unhealthy"), "unknown category 'unhealthy'"),
        (lambda d: d["categories"][0].update(sensitive_en=" "), "'sensitive_en' must be"),
        (lambda d: d["categories"][0].pop("health_vi"), "'health_vi' must be"),
        (lambda d: d["categories"].append(d["categories"][0]), "good listed twice"),
        (lambda d: d.update(id="OTHER"), "not the VN_AQI_1459_ADVICE file"),
    ],
)
def test_a_broken_advice_file_is_refused(change: Any, message: str) -> None:
    data = copy.deepcopy(_data())
    change(data)
    with pytest.raises(AdviceDataError, match=message):
        parse_advice(data, "advice.yaml")


def test_projection_is_web_mercator() -> None:
    assert project(0.0, 0.0, 0) == pytest.approx((128.0, 128.0))
    x, y = project(21.0, 106.3, 10)
    # the slippy-map tile of Hải Dương at zoom 10 (OpenStreetMap's formula)
    n = 2**10
    tx = int((106.3 + 180) / 360 * n)
    lat = math.radians(21.0)
    ty = int((1 - math.asinh(math.tan(lat)) / math.pi) / 2 * n)
    assert (int(x // 256), int(y // 256)) == (tx, ty)
    assert project(21.2, 106.3, 10)[1] < y  # north is up


def test_map_markers_and_tiles() -> None:
    markers = [
        Marker("HD-KK-01", "120", "A <b>", 20.94, 106.33, "#FF7E00", "circle"),
        Marker("HD-NM-01", "–", "B", 21.11, 106.31, "#bbbbbb", "square"),
    ]
    plain = station_map(markers, zoom=10)
    assert plain.count('class="marker"') == 2 and "<image" not in plain
    assert 'href="#station-HD-KK-01"' in plain and "A &lt;b&gt;" in plain  # escaped
    assert "<circle" in plain and "<rect x=" in plain
    tiled = station_map(markers, zoom=10, tile_url="https://t.example/{z}/{x}/{y}.png?k=1&s=2")
    assert '<image href="https://t.example/10/' in tiled and "&amp;s=2" in tiled
    assert station_map(markers, zoom=10, tile_url="javascript:alert(1)//{z}{x}{y}") == plain
    assert tile_origin("https://t.example:8443/{z}/{x}/{y}.png") == "https://t.example:8443"
    assert tile_origin("file:///tiles/{z}/{x}/{y}.png") is None


def test_csp_img_origin() -> None:
    csp = "default-src 'self'; img-src 'self'; object-src 'none'"
    assert with_img_origin(csp, "https://t.example") == (
        "default-src 'self'; img-src 'self' https://t.example; object-src 'none'"
    )


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("en-US,en;q=0.9", Lang.EN),
        ("vi-VN,vi;q=0.9,en;q=0.8", Lang.VI),
        ("fr-FR, en;q=0.5, vi;q=0.7", Lang.VI),
        ("fr, de", None),
        ("", None),
        (None, None),
        ("en;q=0, vi;q=0.1", Lang.VI),
        ("en;q=abc, vi", Lang.VI),
    ],
)
def test_accept_language(header: str | None, lang: Lang | None) -> None:
    assert accept_language(header) is lang

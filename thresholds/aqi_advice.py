"""What Decision 1459/QĐ-TCMT tells the public for each VN_AQI category: the health effect
(section 3, Table 4) and the recommended activities for ordinary people and for sensitive groups
(Table 5). The text is data (thresholds/data/vn_aqi_1459_advice.yaml, cited and flagged there);
this module loads it, checks it against the Table 1 categories of thresholds/aqi.py, and looks it
up by category.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from thresholds.aqi import CATEGORIES, AqiCategory, category

ADVICE_PATH = Path(__file__).parent / "data" / "vn_aqi_1459_advice.yaml"
TEXTS = ("health", "general", "sensitive")


class AdviceDataError(ValueError):
    """The advice file does not match Table 1 or misses a text."""


@dataclass(frozen=True)
class Bilingual:
    vi: str  # the decision's text
    en: str  # quantrac's translation


@dataclass(frozen=True)
class AqiAdvice:
    category: AqiCategory
    health: Bilingual  # Table 4
    general: Bilingual  # Table 5, ordinary people
    sensitive: Bilingual  # Table 5, sensitive groups


@dataclass(frozen=True)
class AdviceSource:
    decision: str
    tables: dict[str, str]
    verified: bool
    translation_en: str


def _text(entry: dict[str, Any], field: str, where: str) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not value.strip():
        raise AdviceDataError(f"{where}: '{field}' must be a non-empty text")
    return " ".join(value.split())


def parse_advice(data: Any, where: str = str(ADVICE_PATH)) -> dict[AqiCategory, AqiAdvice]:
    """Every category of Table 1 once, with its AQI range as in thresholds/aqi.py."""
    if not isinstance(data, dict) or data.get("id") != "VN_AQI_1459_ADVICE":
        raise AdviceDataError(f"{where}: not the VN_AQI_1459_ADVICE file")
    out: dict[AqiCategory, AqiAdvice] = {}
    for i, entry in enumerate(data.get("categories") or []):
        at = f"{where}: categories[{i}]"
        try:
            key = AqiCategory(entry.get("key"))
        except ValueError:
            raise AdviceDataError(f"{at}: unknown category {entry.get('key')!r}") from None
        info = CATEGORIES[key]
        if (entry.get("low"), entry.get("high")) != (info.low, info.high):
            raise AdviceDataError(
                f"{at}: range {entry.get('low')}–{entry.get('high')} differs from Table 1 "
                f"({info.low}–{info.high})"
            )
        if key in out:
            raise AdviceDataError(f"{at}: {key} listed twice")
        texts = [Bilingual(_text(entry, f"{t}_vi", at), _text(entry, f"{t}_en", at)) for t in TEXTS]
        out[key] = AqiAdvice(key, *texts)
    missing = [c.value for c in AqiCategory if c not in out]
    if missing:
        raise AdviceDataError(f"{where}: no advice for {', '.join(missing)}")
    return out


@cache
def _loaded() -> tuple[dict[AqiCategory, AqiAdvice], AdviceSource]:
    data = yaml.safe_load(ADVICE_PATH.read_text(encoding="utf-8"))
    advice = parse_advice(data)
    source = AdviceSource(
        decision=str(data["decision"]),
        tables={str(k): str(v) for k, v in data["tables"].items()},
        verified=bool(data["verified"]),
        translation_en=str(data["translation_en"]),
    )
    return advice, source


def advice_for(aqi: int) -> AqiAdvice:
    """The Table 4/5 texts for an integer VN_AQI (above 500: the hazardous row)."""
    return _loaded()[0][category(min(aqi, CATEGORIES[AqiCategory.HAZARDOUS].high))]


def advice_source() -> AdviceSource:
    return _loaded()[1]

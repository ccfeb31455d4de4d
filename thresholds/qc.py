"""QA/QC of single readings: one ``QcFlag`` per reading, rule parameters as data.

Precedence (the first that applies wins), so that a reading is blamed on its most basic fault:

1. device status: 01 → CALIBRATING, 02 → DEVICE_ERROR (TT 10/2021 status field);
2. OUT_OF_RANGE: not finite, outside the instrument range (registry) or the physical range
   (rules), or stamped more than ``future_tolerance_s`` in the future (the gateway should have
   rejected it already; this is defence in depth, QcFlag has no "future" member);
3. DUPLICATE: a reading with the same ``measured_at`` (to the second) was already judged;
4. LATE: ``measured_at`` more than ``late_horizon_s`` behind the newest reading of its series
   (event time, the series' watermark: the same meaning as the windows' horizon, so a reading QC
   passes is one the windows take). Stored and flagged, not averaged. Readings out of order but
   within the horizon are judged normally and correct their windows. A station's backlog after
   an outage arrives in order, ahead of the watermark: it is judged, however old it is by the
   wall clock (the wall clock only watches for outages and readings from the future);
5. SPIKE: Hampel test against the previous values (``hampel_is_spike``);
6. FLATLINE: the last ``count`` values, this one included, within ``tolerance``;
7. VALID.

The screening thresholds are engineering defaults (``data/qc_rules.yaml``, ``verified: false``):
TT 10/2021's own screening rules are UNVERIFIED (docs/regulations.md §1.4).

History semantics: ``SeriesState.recent`` holds the values of in-order readings that passed
1–4 (spikes and flat values included, so a genuine level shift stops being a "spike" once the
median has moved — at most about window/2 readings later). Out-of-order readings are judged
against the current window but do not enter it. The flatline test is causal: the reading that
completes the run and the ones after it are flagged, the earlier ones stay valid.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy.stats import median_abs_deviation

from core.parameters import Parameter, SourceKind
from core.records import DeviceStatus, QcFlag
from thresholds.manual import ManualPeriods
from thresholds.stamps import Stamps

MAD_SCALE: Final = 1.4826  # MAD → σ for normally distributed noise
DEFAULT_RULES_PATH: Final = Path(__file__).parent / "data" / "qc_rules.yaml"


class SpikeRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    window: int = Field(default=15, ge=3, description="previous values for median/MAD")
    n_sigmas: float = Field(default=5.0, gt=0, description="k in |x − median| > k·σ")
    min_sigma: float = Field(default=0.0, ge=0, description="σ floor in the parameter's unit")
    min_history: int = Field(default=8, ge=3, description="fewer previous values: not judged")


class FlatlineRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    count: int = Field(default=30, ge=2, description="consecutive values, this one included")
    tolerance: float = Field(default=0.0, ge=0, description="max − min still counted as identical")
    ignore_at_or_below: float | None = Field(default=None, description="never stuck")


class QcRules(BaseModel):
    """Screening rules for one (source kind, parameter)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spike: SpikeRule = Field(default_factory=SpikeRule)
    flatline: FlatlineRule = Field(default_factory=FlatlineRule)
    physical_min: float | None = None
    physical_max: float | None = None

    @property
    def history_len(self) -> int:
        return max(self.spike.window, self.flatline.count - 1)


class QcRulesError(ValueError):
    """The rules file is invalid; the message names the key and the allowed values."""


@dataclass(frozen=True)
class QcRuleBook:
    """Resolved rules for every (source kind, parameter)."""

    rules: Mapping[tuple[SourceKind, Parameter], QcRules]
    verified: bool
    note: str

    def rules_for(self, kind: SourceKind | str, parameter: Parameter | str) -> QcRules:
        return self.rules[(SourceKind(kind), Parameter(parameter))]


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _check_keys(keys: Any, allowed: list[str], where: str) -> None:
    bad = sorted(str(k) for k in keys if str(k) not in allowed)
    if bad:
        raise QcRulesError(f"{where}: unknown {bad}; allowed: {allowed}")


def build_rule_book(doc: Mapping[str, Any], where: str = "qc_rules") -> QcRuleBook:
    """Resolve the layered document (see the YAML header) into a QcRuleBook, validating all."""
    kinds_allowed = [k.value for k in SourceKind]
    params_allowed = [p.value for p in Parameter]
    _check_keys(doc, ["verified", "note", "defaults", "kinds", "parameters"], where)
    defaults = doc.get("defaults") or {}
    kinds = doc.get("kinds") or {}
    params = doc.get("parameters") or {}
    _check_keys(kinds, kinds_allowed, f"{where}.kinds")
    _check_keys(params, params_allowed, f"{where}.parameters")
    resolved: dict[tuple[SourceKind, Parameter], QcRules] = {}
    for kind in SourceKind:
        kind_doc = dict(kinds.get(kind.value) or {})
        kind_params = kind_doc.pop("parameters", None) or {}
        _check_keys(kind_params, params_allowed, f"{where}.kinds.{kind.value}.parameters")
        for p in Parameter:
            merged = _merge(_merge(defaults, kind_doc), params.get(p.value) or {})
            merged = _merge(merged, kind_params.get(p.value) or {})
            try:
                resolved[(kind, p)] = QcRules.model_validate(merged)
            except ValidationError as exc:
                raise QcRulesError(f"{where} for {kind.value}/{p.value}: {exc}") from exc
    return QcRuleBook(resolved, bool(doc.get("verified", False)), str(doc.get("note", "")))


def load_qc_rules(path: Path | None = None) -> QcRuleBook:
    """Load and validate ``thresholds/data/qc_rules.yaml`` (or ``path``)."""
    path = path or DEFAULT_RULES_PATH
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, Mapping):
        raise QcRulesError(f"{path}: expected a mapping at the top level")
    return build_rule_book(doc, str(path))


def _epoch_s(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware, got naive {ts.isoformat()}")
    return math.floor(ts.timestamp())


@dataclass
class SeriesState:
    """What QC remembers per (source, parameter); JSON-serialisable via to_dict/from_dict.

    ``recent``: values of the last in-order readings (oldest first), bounded by the rules.
    ``seen``: whole-second timestamps judged within the late horizon (duplicate detection),
    held and stored as [start, step, count] runs (thresholds/stamps.py), so a regular cadence
    costs a few numbers.
    """

    recent: list[float] = field(default_factory=list)
    newest: int | None = None  # epoch s of the newest in-order reading
    seen: Stamps = field(default_factory=Stamps)
    # the periods an operator invalidated (thresholds/manual.py), within the late horizon
    manual: ManualPeriods = field(default_factory=ManualPeriods)

    def observe(
        self,
        value: float,
        measured_at: datetime,
        flag: QcFlag,
        rules: QcRules,
        late_horizon_s: float,
    ) -> None:
        """Update the state after ``classify`` judged a reading ``flag``."""
        t = _epoch_s(measured_at)
        if flag in (QcFlag.DUPLICATE, QcFlag.LATE, QcFlag.OUT_OF_RANGE):
            return
        if t not in self.seen:  # calibrating/error readings count for duplicate detection too
            self.seen.add(t)
        if flag in (QcFlag.VALID, QcFlag.SPIKE, QcFlag.FLATLINE) and (
            self.newest is None or t > self.newest
        ):
            self.recent.append(float(value))
            del self.recent[: -rules.history_len]
        if self.newest is None or t > self.newest:
            # Forget what fell out of the late horizon once per event-time hour, not per
            # reading; anything a stale entry could match is older than the horizon, so
            # flagged late before that.
            if self.newest is None or t // 3600 != self.newest // 3600:
                cutoff = math.ceil(t - late_horizon_s)
                self.seen.forget_before(cutoff)
                self.manual.forget_before(cutoff)
            self.newest = t

    def to_dict(self) -> dict[str, Any]:
        d = {"recent": list(self.recent), "newest": self.newest, "seen": self.seen.runs()}
        if self.manual.spans:
            d["manual"] = [list(s) for s in self.manual.spans]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SeriesState:
        return cls(
            [float(v) for v in d["recent"]],
            d["newest"],
            Stamps(d["seen"]),
            ManualPeriods([list(s) for s in d.get("manual", [])]),
        )


def hampel_is_spike(
    window: Sequence[float], value: float, k: float, min_sigma: float = 0.0
) -> bool:
    """Hampel test: |value − median(window)| > k · max(1.4826·MAD(window), min_sigma).

    With σ = 0 (a flat window and no floor) nothing is called a spike: a perfectly flat
    history is the flatline rule's business, and any change from it would otherwise be "∞ σ".
    """
    if not window:
        return False
    # Pure-Python medians: for the ≤ 30-value windows judged once per reading they are ~20×
    # faster than numpy/scipy's call overhead, which profiling showed to be a quarter of the
    # worker's CPU. `hampel_is_spike_scipy` is the reference; a property test keeps them equal.
    median = statistics.median(window)
    mad = statistics.median([abs(x - median) for x in window])
    sigma = max(mad * MAD_SCALE, min_sigma)
    if sigma <= 0:
        return False
    return abs(value - median) > k * sigma


def hampel_is_spike_scipy(
    window: Sequence[float], value: float, k: float, min_sigma: float = 0.0
) -> bool:
    """The same test with numpy/scipy (the reference implementation for the fast one)."""
    if not window:
        return False
    arr = np.asarray(window, dtype=float)
    median = float(np.median(arr))
    sigma = max(float(median_abs_deviation(arr)) * MAD_SCALE, min_sigma)
    if sigma <= 0:
        return False
    return abs(value - median) > k * sigma


def is_flatline(window: Sequence[float], value: float, rule: FlatlineRule) -> bool:
    """True when ``value`` completes ``rule.count`` consecutive values within the tolerance."""
    if not rule.enabled or len(window) < rule.count - 1:
        return False
    run = [*window[len(window) - (rule.count - 1) :], value]
    if rule.ignore_at_or_below is not None and min(run) <= rule.ignore_at_or_below:
        return False
    return max(run) - min(run) <= rule.tolerance + 1e-9  # decimal readings: 3.1 − 3.0 > 0.1


def is_future(measured_at: datetime, now: datetime, tolerance_s: float) -> bool:
    """Stamped further in the future than the tolerance (the gateway rejects these)."""
    return (measured_at - now).total_seconds() > tolerance_s


def out_of_range(value: float, spec_range: tuple[float, float] | None, rules: QcRules) -> bool:
    """Not finite, or outside the instrument range or the physical range (bounds inclusive)."""
    if not math.isfinite(value):
        return True
    if spec_range is not None and not spec_range[0] <= value <= spec_range[1]:
        return True
    if rules.physical_min is not None and value < rules.physical_min:
        return True
    return rules.physical_max is not None and value > rules.physical_max


_STATUSES: Final = frozenset(DeviceStatus)
_STATUS_FLAGS: Final = {
    DeviceStatus.CALIBRATING: QcFlag.CALIBRATING,
    DeviceStatus.ERROR: QcFlag.DEVICE_ERROR,
}


def classify(
    value: float,
    status: DeviceStatus | str,
    spec_range: tuple[float, float] | None,
    state: SeriesState,
    rules: QcRules,
    *,
    measured_at: datetime,
    now: datetime,
    late_horizon_s: float,
    future_tolerance_s: float = 300.0,
) -> QcFlag:
    """One flag for a unit-normalised reading (precedence in the module docstring). Pure."""
    if status not in _STATUSES:
        DeviceStatus(status)  # raises ValueError: not a status code
    flag = _STATUS_FLAGS.get(status)  # type: ignore[arg-type]  # a StrEnum member is its str
    if flag is not None:
        return flag
    if out_of_range(value, spec_range, rules) or is_future(measured_at, now, future_tolerance_s):
        return QcFlag.OUT_OF_RANGE
    t = _epoch_s(measured_at)
    if t in state.seen:
        return QcFlag.DUPLICATE
    if state.newest is not None and state.newest - t > late_horizon_s:
        return QcFlag.LATE
    spike = rules.spike
    history = state.recent[-spike.window :]
    if (
        spike.enabled
        and len(history) >= spike.min_history
        and hampel_is_spike(history, value, spike.n_sigmas, spike.min_sigma)
    ):
        return QcFlag.SPIKE
    if is_flatline(state.recent, value, rules.flatline):
        return QcFlag.FLATLINE
    return QcFlag.VALID


def judge(
    value: float,
    status: DeviceStatus | str,
    spec_range: tuple[float, float] | None,
    state: SeriesState,
    rules: QcRules,
    *,
    measured_at: datetime,
    now: datetime,
    late_horizon_s: float,
    future_tolerance_s: float = 300.0,
) -> QcFlag:
    """``classify`` then ``state.observe``: the one call a validate agent needs."""
    flag = classify(
        value,
        status,
        spec_range,
        state,
        rules,
        measured_at=measured_at,
        now=now,
        late_horizon_s=late_horizon_s,
        future_tolerance_s=future_tolerance_s,
    )
    state.observe(value, measured_at, flag, rules, late_horizon_s)
    return flag

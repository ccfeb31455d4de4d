"""Reference-O2 correction of stack concentrations (issue 19; docs/regulations.md §6.4).

C_ref = C_measured × (21 − O2_ref) / (21 − O2_measured), thresholds/data/reference_o2.yaml
`formula`; the 6 % reference of coal-fired thermal power is QCVN 22:2009/BTNMT §2 (O2 dư), shipped
verified: false. Windows without a valid O2 average, or with O2 ≥ 20.9 %, are not judged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from core.records import Average
from thresholds.catalogue import Basis, RuleKind
from thresholds.limits import Limit
from thresholds.reference_o2 import (
    CorrectionSettings,
    CorrectionState,
    ReferenceO2,
    correct,
    correct_series,
    correction_settings,
    load_reference_table,
    reference_for,
    settings_for,
    step,
    with_reference,
)
from thresholds.violations import evaluate

T0 = datetime(2026, 11, 24, 3, tzinfo=UTC)
H = timedelta(hours=1)
REF6 = ReferenceO2(6.0, "QCVN 22:2009/BTNMT §2 (test)", False, "test")
SETTINGS = CorrectionSettings(REF6, frozenset({"SO2", "Dust"}))


def avg(
    parameter: str,
    value: float | None,
    hour: int = 0,
    *,
    valid: bool = True,
    revision: int = 0,
    final: bool = True,
    source: str = "HD-KT-01",
) -> Average:
    unit = "%" if parameter == "O2" else "mg/Nm3"
    return Average(
        source_id=source,
        parameter=parameter,
        period="1h",
        window_start=T0 + hour * H,
        window_end=T0 + (hour + 1) * H,
        value=value,
        unit=unit,
        samples=60 if valid else 10,
        expected=60,
        completeness=1.0 if valid else 10 / 60,
        valid=valid,
        revision=revision,
        final=final,
    )


# ---- the formula ------------------------------------------------------------------------------


def test_formula_high_excess_air_raises_the_concentration() -> None:
    # 1000 mg/Nm³ at 15 % O2, reference 6 %: 1000 × (21 − 6) / (21 − 15) = 2500
    c = correct(1000.0, 15.0, 6.0)
    assert c.judged and c.corrected == 2500.0
    assert (c.measured, c.o2_measured, c.o2_reference) == (1000.0, 15.0, 6.0)


def test_formula_at_reference_o2_is_the_measured_value() -> None:
    assert correct(1000.0, 6.0, 6.0).corrected == 1000.0
    # below the reference (richer gas) the corrected value is lower: 200 × 14 / 17
    assert correct(200.0, 4.0, 7.0).corrected == pytest.approx(200 * 14 / 17)


@pytest.mark.parametrize("o2", [20.9, 21.0, 25.0])
def test_formula_guard_ambient_air_is_not_judged(o2: float) -> None:
    c = correct(1000.0, o2, 6.0)
    assert not c.judged and c.corrected is None
    assert "≥ 20.9 %" in c.reason and "not judged" in c.reason


def test_formula_guard_missing_or_negative_o2_is_not_judged() -> None:
    missing = correct(1000.0, None, 6.0)
    assert missing.corrected is None and "no valid O2 average" in missing.reason
    assert correct(1000.0, -0.5, 6.0).corrected is None


def test_formula_refuses_an_impossible_reference() -> None:
    with pytest.raises(ValueError, match="reference O2 21"):
        correct(1.0, 5.0, 21.0)


# ---- the data and where a stack's reference comes from ----------------------------------------


def test_table_loads_and_every_value_is_flagged() -> None:
    table = load_reference_table()
    assert table.formula.max_o2_measured == 20.9
    assert {"SO2", "NOx", "Dust", "CO"} <= set(table.corrected_parameters)
    assert "O2" not in table.corrected_parameters
    # no primary text was read: nothing may pass as verified law
    assert all(not e.verified and e.note for e in table.references)
    cond = table.conditions_for("QCVN_19_2009")
    assert cond is not None and cond.temperature_c == 25 and "UNVERIFIED" in cond.text()


def test_reference_by_sector_fuel_and_permit() -> None:
    table = load_reference_table()
    coal = reference_for(SimpleNamespace(id="S"), table, facility_sector="nhiệt điện than")
    assert coal is not None and coal.o2_percent == 6 and not coal.verified
    assert "QCVN 22:2009" in coal.basis
    turbine = reference_for(SimpleNamespace(id="S", sector="nhiệt điện", fuel="gas_turbine"), table)
    assert turbine is not None and turbine.o2_percent == 15
    assert reference_for(SimpleNamespace(id="S"), table, facility_sector="xi măng") is None
    permit = SimpleNamespace(
        id="S", reference_o2={"o2_percent": 10, "basis": "GPMT 208, Phụ lục II"}
    )
    got = reference_for(permit, table, facility_sector="nhiệt điện than")
    assert got is not None and (got.o2_percent, got.origin, got.verified) == (10, "permit", True)


def test_settings_only_for_stacks_with_o2_and_a_reference() -> None:
    table = load_reference_table()

    def src(kind: str, codes: list[str]) -> SimpleNamespace:
        params = [SimpleNamespace(code=c) for c in codes]
        return SimpleNamespace(id="S", kind=SimpleNamespace(value=kind), parameters=params)

    stack = settings_for(src("stack", ["O2", "SO2", "Temp"]), table, "nhiệt điện than")
    assert stack is not None and stack.parameters == frozenset({"SO2"})
    assert settings_for(src("stack", ["SO2"]), table, "nhiệt điện than") is None  # no O2
    assert settings_for(src("wastewater", ["O2", "COD"]), table, "nhiệt điện than") is None
    assert settings_for(src("stack", ["O2", "SO2"]), table, "xi măng") is None


# ---- the stage --------------------------------------------------------------------------------


def test_pollutant_waits_for_its_windows_o2_then_goes_out_corrected() -> None:
    state, out = step(None, [avg("SO2", 1000.0), avg("Temp", 150.0)], SETTINGS)
    assert [a.parameter for a in out] == ["Temp"]  # passed through; SO2 waits for O2
    state, out = step(state, [avg("O2", 15.0)], SETTINGS)
    assert [a.parameter for a in out] == ["O2", "SO2"]
    so2 = out[1]
    assert so2.value == 2500.0 and so2.valid
    assert (so2.measured_value, so2.o2_measured, so2.o2_reference) == (1000.0, 15.0, 6.0)
    assert "O2 tham chiếu 6 %" in so2.correction_basis and so2.not_judged == ""
    # the next hour: O2 first, then the pollutant goes out at once
    state, out = step(state, [avg("O2", 6.0, 1), avg("SO2", 1000.0, 1)], SETTINGS)
    assert [(a.parameter, a.value) for a in out] == [("O2", 6.0), ("SO2", 1000.0)]


def test_window_with_invalid_or_ambient_o2_is_not_judged_and_says_why() -> None:
    state, out = step(None, [avg("O2", 12.0, valid=False), avg("SO2", 1000.0)], SETTINGS)
    so2 = out[-1]
    assert so2.value is None and not so2.valid and so2.measured_value == 1000.0
    assert "O2 average of this window is invalid" in so2.not_judged
    _, out = step(state, [avg("O2", 20.95, 1), avg("Dust", 50.0, 1)], SETTINGS)
    assert out[-1].value is None and "≥ 20.9 %" in out[-1].not_judged


def test_a_revised_o2_window_re_emits_its_pollutants_with_a_higher_revision() -> None:
    state, out = step(None, [avg("O2", 15.0), avg("SO2", 1000.0)], SETTINGS)
    assert out[-1].revision == 0
    state, out = step(state, [avg("O2", 11.0, revision=1)], SETTINGS)
    # 1000 × 15 / 10 = 1500
    assert [(a.parameter, a.value, a.revision) for a in out] == [
        ("O2", 11.0, 1),
        ("SO2", 1500.0, 1),
    ]
    # a replay: the O2 average passes through (the check ignores it), no pollutant again
    _, out = step(state, [avg("O2", 11.0, revision=1)], SETTINGS)
    assert [a.parameter for a in out] == ["O2"]


def test_pending_windows_are_bounded_and_leave_as_not_judged() -> None:
    settings = CorrectionSettings(REF6, frozenset({"SO2"}), horizon=timedelta(hours=3))
    state, out = step(None, [avg("SO2", 900.0, 0)], settings)
    assert out == []
    # O2 of hour 0 never comes; hour 4 pushes it past the 3-h horizon
    state, out = step(state, [avg("O2", 8.0, 4)], settings)
    left = [a for a in out if a.parameter == "SO2"]
    assert len(left) == 1 and left[0].value is None and left[0].measured_value == 900.0
    assert "no valid O2 average" in left[0].not_judged
    assert "SO2" not in json.dumps(state.to_dict()["pending"])
    capped = CorrectionSettings(REF6, frozenset({"SO2"}), max_windows=2)
    state, out = step(None, [avg("SO2", 1.0, h) for h in range(5)], capped)
    assert len(out) == 3 and len(state.ends) == 2


def test_state_survives_json() -> None:
    state, _ = step(None, [avg("SO2", 1000.0), avg("O2", 15.0, 1, final=False)], SETTINGS)
    again = CorrectionState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again.to_dict() == state.to_dict()
    _, out = step(again, [avg("O2", 15.0)], SETTINGS)
    assert out[-1].value == 2500.0


def test_a_held_pollutant_comes_out_as_it_went_in() -> None:
    """A pollutant waiting for its O2 is held compactly (``Held``); corrected later, it is the
    same average as one whose O2 was there first."""
    waited, _ = step(None, [avg("SO2", 1000.0, revision=2)], SETTINGS)
    _, late = step(waited, [avg("O2", 15.0)], SETTINGS)
    _, first = step(None, [avg("O2", 15.0), avg("SO2", 1000.0, revision=2)], SETTINGS)
    assert [a.asdict() for a in late if a.parameter == "SO2"] == [
        a.asdict() for a in first if a.parameter == "SO2"
    ]


def test_a_state_stored_before_held_averages_loads() -> None:
    """A changelog written when ``pending`` held whole Average objects restores the same."""
    state, _ = step(None, [avg("SO2", 1000.0)], SETTINGS)
    older = json.loads(json.dumps(state.to_dict()))
    a = avg("SO2", 1000.0)
    key = next(iter(older["pending"]))
    older["pending"][key] = {
        "SO2": {
            **{f: getattr(a, f) for f in ("source_id", "parameter", "period", "value", "unit",
                                          "samples", "expected", "completeness", "valid",
                                          "revision", "final")},
            "window_start": a.window_start.isoformat(),
            "window_end": a.window_end.isoformat(),
        }
    }  # fmt: skip
    again = CorrectionState.from_dict(older)
    assert again.to_dict() == state.to_dict()


def test_running_hour_is_paired_with_the_running_o2() -> None:
    state, _ = step(None, [avg("O2", 15.0, final=False)], SETTINGS)
    _, out = step(state, [avg("SO2", 1000.0, final=False)], SETTINGS)
    assert out[0].value == 2500.0 and not out[0].final


def test_only_what_a_restart_must_see_counts_as_a_change() -> None:
    """The worker logs the state when ``changes`` moves (streams/stages.py, ``version``): the
    running O2 and running pollutant means, renewed every batch, do not move it."""
    state, _ = step(None, [avg("O2", 15.0, final=False)], SETTINGS)
    before = state.changes
    state, out = step(
        state, [avg("O2", 14.0, final=False), avg("SO2", 900.0, final=False)], SETTINGS
    )
    assert out and state.changes == before
    state, _ = step(state, [avg("SO2", 1000.0)], SETTINGS)  # waits for its O2: pending
    assert state.changes == before + 1
    state, _ = step(state, [avg("O2", 15.0)], SETTINGS)
    assert state.changes == before + 2
    state, _ = step(state, [avg("O2", 15.0)], SETTINGS)  # a replay
    assert state.changes == before + 2


def test_other_sources_are_refused() -> None:
    state, _ = step(None, [avg("SO2", 1.0)], SETTINGS)
    with pytest.raises(ValueError, match="HD-KT-02"):
        step(state, [avg("SO2", 1.0, source="HD-KT-02")], SETTINGS)


def test_no_reference_passes_everything_through() -> None:
    items = [avg("SO2", 1000.0), avg("O2", 15.0)]
    _, out = step(None, items, CorrectionSettings(None, frozenset({"SO2"})))
    assert out == items


def test_reports_pair_stored_series_by_window() -> None:
    @dataclass
    class Row:
        period: str
        window_start: datetime
        window_end: datetime
        value: float | None
        valid: bool = True
        extra: list[str] = field(default_factory=list)

    so2 = [Row("1h", T0, T0 + H, 1000.0), Row("1h", T0 + H, T0 + 2 * H, 1000.0)]
    o2 = [Row("1h", T0, T0 + H, 15.0), Row("1h", T0 + H, T0 + 2 * H, 15.0, valid=False)]
    got = correct_series(so2, o2, REF6)
    assert [c.corrected for _, c in got] == [2500.0, None]


# ---- into the violation ------------------------------------------------------------------------


def _limit() -> Limit:
    return Limit(
        rule_id="QCVN_19_2009:B:SO2:1h",
        source_id="HD-KT-01",
        regulation="QCVN_19_2009",
        column="B",
        parameter="SO2",
        kind=RuleKind.UPPER,
        min=None,
        max=1500.0,
        unit="mg/Nm3",
        period=Basis.HOUR,
        legal_basis="GPMT 12 (test)",
        verified=False,
    )


def test_violation_on_the_corrected_value_shows_measured_o2_and_corrected() -> None:
    limit = with_reference([_limit()], REF6, {"SO2"})[0]
    assert limit.o2_reference == 6.0
    _, out = step(None, [avg("O2", 15.0), avg("SO2", 1000.0)], SETTINGS)
    _, events = evaluate(None, out[-1], limit)
    assert [e.event for e in events] == ["opened"]
    e = events[0]
    assert (e.value, e.measured_value, e.o2_measured, e.o2_reference) == (2500.0, 1000.0, 15, 6)
    assert (e.peak_value, e.peak_measured_value, e.peak_o2_measured) == (2500.0, 1000.0, 15.0)
    assert "measured 1000 mg/Nm3 at O2 15 %" in e.message
    # the same measured value at the reference O2 is within the limit: nothing opens
    _, at_ref = step(None, [avg("O2", 6.0, 1), avg("SO2", 1000.0, 1)], SETTINGS)
    _, none = evaluate(None, at_ref[-1], limit)
    assert none == []


def test_the_shipped_registry_corrects_its_thermal_power_stacks() -> None:
    from stations.registry import load_registry

    registry = load_registry()
    got = correction_settings(registry)
    phalai = got["HD-KT-01"]  # Phả Lại, coal: QCVN 22:2009 6 % (UNVERIFIED)
    assert phalai.reference is not None and phalai.reference.o2_percent == 6
    assert {"SO2", "NOx", "Dust", "CO"} <= phalai.parameters
    assert all(registry.get(s).kind.value == "stack" for s in got)

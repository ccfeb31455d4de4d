"""Limits per source: the catalogue's rules resolved for one source's limit sets, as of a date.

A source (outfall, stack, station) names in the registry the regulation(s) it is held to, the
column, its coefficients (Kq/Kf or Kp/Kv) and its permit overrides. ``resolve_limits`` turns that
into concrete :class:`Limit` objects — one per parameter the source measures and averaging basis —
each carrying a stable ``rule_id`` and a human ``legal_basis`` so staff can check it against the
permit (``quantrac limits SOURCE``).

Rules of resolution (pure, no I/O):
- a rule applies when its dates contain ``at`` (PM2.5 24 h: 50 to 2025-12-31, 45 from 2026-01-01);
- ``Cmax = C × K1 × K2`` for upper limits of regulations with a coefficient scheme, unless the rule
  is exempt (``coefficients: false``); lower and range limits never take coefficients;
- a permit override wins: its bounds replace the catalogue's for that parameter (given bounds
  define the kind: max → upper, min → lower, both → range), it names its legal basis, and may set
  the averaging basis (``period``); values are taken as final (no coefficients);
- catalogue values are converted to the unit the source's parameter is registered in;
- of a regulation and its replacement listed for one source (QCVN 40:2011 and 40:2025), one
  applies per date: the permit's choice, else the transition clause and the facility's status
  (``thresholds/transition.py``); each limit says why in ``selected_by``;
- a limit set naming a ``category`` (sector or capacity row group) takes that group's rows
  instead of the general row for the same parameter and basis;
- a regulation whose rows depend on the discharge flow (``flow_classes``, QCVN 40:2025) takes the
  rows of the point's band: the band the limit set states (``flow_class``, from the permit), else
  the band of the point's ``permitted_flow_m3_per_day``; a band's row replaces the row without a
  band. A point with neither gets no banded row and ``catalogue_gaps`` says why.

The registry's Source model is not imported: any object with the attributes of
:class:`SourceLike` works (duck typing, checked by mypy through Protocols).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from thresholds.catalogue import Basis, Catalogue, FlowClass, Regulation, Rule, RuleKind
from thresholds.transition import TransitionError, select_limit_sets


class LimitResolutionError(ValueError):
    """A source's limit configuration that cannot be resolved; names source, regulation, field."""


class ParameterLike(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def unit(self) -> str: ...


class LimitSetLike(Protocol):
    @property
    def regulation(self) -> str: ...
    @property
    def column(self) -> str | None: ...
    @property
    def coefficients(self) -> Mapping[Any, float]: ...
    @property
    def overrides(self) -> Mapping[Any, Any]: ...


class SourceLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def parameters(self) -> Sequence[ParameterLike]: ...
    @property
    def limits(self) -> Sequence[LimitSetLike]: ...


class Limit(BaseModel):
    """One limit a source is held to, after column, coefficients, overrides and unit."""

    model_config = ConfigDict(frozen=True)

    rule_id: str  # stable: "QCVN_40_2011:B:COD:1h" ("QCVN_05_2023:PM2.5:24h" without column)
    source_id: str
    regulation: str
    column: str | None
    parameter: str
    kind: RuleKind
    min: float | None
    max: float | None
    unit: str  # the source's unit for the parameter
    period: Basis
    legal_basis: str
    verified: bool
    note: str = ""
    effective_from: date | None = None
    effective_to: date | None = None  # inclusive
    overridden: bool = False  # True: a permit value replaced the catalogue's
    coefficients_applied: bool = False  # True: Cmax = C × K… (the source's coefficients)
    # Stacks (issue 19): the limit is a concentration at this O2 content; measured values are
    # corrected to it before the comparison (thresholds/reference_o2.py). None: as measured.
    o2_reference: float | None = None
    o2_basis: str = ""  # where the reference comes from (permit, or regulation and clause)
    selected_by: str = ""  # why this regulation applies on the date (permit or transition clause)

    @property
    def checked(self) -> bool:
        """False for yearly limits: assessed per calendar year in reports, not in real time."""
        return self.period.period is not None

    def bound_text(self) -> str:
        return _bounds_text(self.kind, self.min, self.max)

    def exceeded_by(self, value: float) -> bool:
        """Whether ``value`` is past the limit: above its maximum or below its minimum."""
        over = self.max is not None and self.kind is not RuleKind.LOWER and value > self.max
        under = self.min is not None and self.kind is not RuleKind.UPPER and value < self.min
        return over or under


_PERIOD_TEXT = {
    Basis.HOUR: "trung bình 1 giờ",
    Basis.ROLLING_8H: "trung bình 8 giờ (8 giờ liên tục)",
    Basis.ROLLING_24H: "trung bình 24 giờ trượt",
    Basis.DAY: "trung bình 24 giờ (một ngày đêm, 00:00–24:00 giờ địa phương)",
    Basis.YEAR: "trung bình năm (năm dương lịch)",
}


def resolve_limits(source: SourceLike, catalogue: Catalogue, at: date) -> list[Limit]:
    """Every limit ``source`` is held to on ``at``, ordered by parameter, then basis."""
    measured = {str(p.code): p.unit for p in source.parameters}
    limits: list[Limit] = []
    status = getattr(source, "transition_status", None)
    try:
        selected = select_limit_sets(source.id, source.limits, catalogue, at, status)
    except TransitionError as exc:
        raise LimitResolutionError(str(exc)) from None
    for choice in selected:
        limit_set = choice.limit_set
        flow = flow_class_of(source, limit_set, catalogue)
        resolved = resolve_limit_set(
            source.id,
            catalogue,
            at,
            regulation=str(limit_set.regulation),
            column=limit_set.column,
            coefficients=limit_set.coefficients,
            overrides=limit_set.overrides,
            measured=measured,
            category=getattr(limit_set, "category", None),
            flow_class=flow.flow_class,
        )
        if choice.reason:
            resolved = [lim.model_copy(update={"selected_by": choice.reason}) for lim in resolved]
        # The registry may doubt the whole limit set, or only its coefficient values (then only
        # the limits those coefficients multiply are in doubt).
        doubt_all = not getattr(limit_set, "verified", True)
        doubt_k = not getattr(limit_set, "coefficients_verified", True)
        if doubt_all or doubt_k:
            note = getattr(limit_set, "note", "") or "limit set flagged unverified in the registry"
            resolved = [
                lim.model_copy(update={"verified": False, "note": _join(lim.note, note)})
                if doubt_all or lim.coefficients_applied
                else lim
                for lim in resolved
            ]
        limits += resolved
    seen: dict[str, Limit] = {}
    for limit in limits:
        if limit.rule_id in seen:
            raise LimitResolutionError(
                f"source {source.id}: rule {limit.rule_id} resolved twice (same regulation and "
                "column listed in two limit sets?)"
            )
        seen[limit.rule_id] = limit
    order = list(Basis)
    return sorted(limits, key=lambda lim: (lim.parameter, order.index(lim.period), lim.rule_id))


def resolve_limit_set(
    source_id: str,
    catalogue: Catalogue,
    at: date,
    *,
    regulation: str,
    column: str | None,
    coefficients: Mapping[Any, float],
    overrides: Mapping[Any, Any],
    measured: Mapping[str, str],
    category: str | None = None,
    flow_class: str | None = None,
) -> list[Limit]:
    """Limits from one regulation for one source (plain arguments; see ``resolve_limits``).

    ``measured`` maps the parameter codes the source measures to their registered units;
    ``category`` names the row group (sector, capacity) of the regulation's tables and
    ``flow_class`` the point's discharge-flow band (``flow_class_of``).
    """
    where = f"source {source_id}, limits {regulation}"
    if regulation not in catalogue:
        allowed = ", ".join(sorted(catalogue.regulations))
        raise LimitResolutionError(f"{where}: unknown regulation; allowed: {allowed}")
    reg = catalogue[regulation]
    if not reg.in_force(at):
        raise LimitResolutionError(
            f"{where}: {reg.code} is not in force on {at.isoformat()} (from "
            f"{reg.effective_from or 'unknown'} to {reg.last_day or 'open'})"
        )
    _check_column(where, reg, column)
    coeffs = _check_coefficients(where, reg, coefficients)
    if category is not None and category not in reg.categories:
        allowed = ", ".join(reg.categories) or "none"
        raise LimitResolutionError(f"{where}: category {category!r} not valid; allowed: {allowed}")
    if flow_class is not None and flow_class not in reg.flow_classes:
        allowed = ", ".join(reg.flow_classes) or "none"
        raise LimitResolutionError(
            f"{where}: flow class {flow_class!r} not valid; allowed: {allowed}"
        )

    limits: dict[str, list[Limit]] = {}
    for rule in applicable_rules(reg, category, flow_class):
        if rule.parameter not in measured:
            continue
        lo, hi = reg.rule_dates(rule)
        if not lo <= at <= hi:
            continue
        cell = rule.cell(column)
        if cell is None or cell.is_gap:
            continue
        try:
            limit = _from_rule(source_id, reg, rule, column, coeffs, measured[rule.parameter])
        except LimitResolutionError as exc:
            raise LimitResolutionError(f"{where}, {rule.parameter}: {exc}") from None
        limits.setdefault(rule.parameter, []).append(limit)

    for code, override in overrides.items():
        parameter = str(code)
        if parameter not in measured:
            raise LimitResolutionError(
                f"{where}: override for {parameter!r}, which the source does not measure "
                f"(measured: {', '.join(sorted(measured))})"
            )
        limits[parameter] = _apply_override(
            f"{where}, override {parameter}",
            source_id,
            reg,
            column,
            parameter,
            measured[parameter],
            limits.get(parameter, []),
            override,
        )
    return [limit for group in limits.values() for limit in group]


def applicable_regulations(source: SourceLike, catalogue: Catalogue, at: date) -> list[str]:
    """One line per limit set that applies on ``at``: regulation, column, category and why
    (the permit, or the transition clause and the facility's status)."""
    status = getattr(source, "transition_status", None)
    lines = []
    for choice in select_limit_sets(source.id, source.limits, catalogue, at, status):
        ls = choice.limit_set
        reg_id = str(ls.regulation)
        code = catalogue[reg_id].code if reg_id in catalogue else reg_id
        column = f", cột {ls.column}" if ls.column else ""
        category = getattr(ls, "category", None)
        group = f", nhóm {category}" if category else ""
        lines.append(f"{code}{column}{group}" + (f" — {choice.reason}" if choice.reason else ""))
    return lines


def flow_class_lines(source: SourceLike, catalogue: Catalogue, at: date) -> list[str]:
    """The point's discharge-flow band under each applicable regulation that has bands
    (QCVN 40:2025), one line each: "QCVN 40:2025/BTNMT: lưu lượng F1 (…; permitted flow …)"."""
    status = getattr(source, "transition_status", None)
    lines = []
    for choice in select_limit_sets(source.id, source.limits, catalogue, at, status):
        reg_id = str(choice.limit_set.regulation)
        if reg_id in catalogue and catalogue[reg_id].flow_classes:
            flow = flow_class_of(source, choice.limit_set, catalogue)
            lines.append(f"{catalogue[reg_id].code}: {flow.text}")
    return lines


def catalogue_gaps(source: SourceLike, catalogue: Catalogue, at: date) -> list[str]:
    """Measured parameters whose applicable table cell is not catalogued (UNVERIFIED) and that no
    permit override covers, one line each: ``quantrac limits`` shows them next to the limits."""
    measured = {str(p.code) for p in source.parameters}
    status = getattr(source, "transition_status", None)
    lines: list[str] = []
    for choice in select_limit_sets(source.id, source.limits, catalogue, at, status):
        limit_set = choice.limit_set
        reg_id, column = str(limit_set.regulation), limit_set.column
        if reg_id not in catalogue:
            continue
        reg = catalogue[reg_id]
        category = getattr(limit_set, "category", None)
        flow = flow_class_of(source, limit_set, catalogue)
        covered = {str(k) for k in limit_set.overrides}
        chosen = applicable_rules(reg, category, flow.flow_class)
        for rule in chosen:
            if rule.parameter not in measured or rule.parameter in covered:
                continue
            lo, hi = reg.rule_dates(rule)
            cell = rule.cell(column)
            if not lo <= at <= hi or cell is None or not cell.is_gap:
                continue
            rid = rule_id(
                reg.id,
                column if rule.columns is not None else None,
                rule.parameter,
                reg.period_of(rule),
            )
            band = f" [{flow.text}]" if rule.flow_class else ""
            lines.append(
                f"{rid}: no value catalogued — UNVERIFIED{band} ({_join(rule.note, cell.note)})"
            )
        if flow.flow_class is None and reg.flow_classes:
            # rows written per band only: without the point's band none of them applies
            have = {(r.parameter, reg.period_of(r)) for r in chosen}
            banded = {
                (r.parameter, reg.period_of(r)): r
                for r in reg.rules
                if r.flow_class is not None and r.parameter in measured - covered
            }
            for (parameter, period), rule in banded.items():
                if (parameter, period) in have:
                    continue
                col = column if rule.columns is not None else None
                lines.append(
                    f"{rule_id(reg.id, col, parameter, period)}: depends on the discharge-flow "
                    f"class ({', '.join(reg.flow_classes)}), {flow.text} — not checked"
                )
    return lines


class FlowChoice(BaseModel):
    """A point's discharge-flow band under one regulation, and how it was found."""

    model_config = ConfigDict(frozen=True)

    flow_class: str | None  # None: the regulation has no bands, or the point's is unknown
    text: str = ""  # for `quantrac limits`: "lưu lượng F2 (F > 5.000 m³/ngày đêm; permitted …)"
    verified: bool = True  # False: the band's bounds are themselves unverified


def flow_class_of(source: SourceLike, limit_set: LimitSetLike, catalogue: Catalogue) -> FlowChoice:
    """The band of the regulation's flow-dependent rows that applies to ``source``.

    Stated by the limit set (``flow_class``: the permit names it) or derived from the point's
    ``permitted_flow_m3_per_day``; a stated band that contradicts the permitted flow is a registry
    error (one of the two is wrong), as is a band the regulation does not define.
    """
    reg_id = str(limit_set.regulation)
    stated = getattr(limit_set, "flow_class", None)
    flow = getattr(source, "permitted_flow_m3_per_day", None)
    where = f"source {source.id}, limits {reg_id}"
    if reg_id not in catalogue:
        return FlowChoice(flow_class=None)
    reg = catalogue[reg_id]
    if not reg.flow_classes:
        if stated is not None:
            raise LimitResolutionError(
                f"{where}: flow_class {stated!r} given but {reg.code} defines no flow classes"
            )
        return FlowChoice(flow_class=None)
    if stated is not None and stated not in reg.flow_classes:
        allowed = ", ".join(reg.flow_classes)
        raise LimitResolutionError(f"{where}: flow_class {stated!r} not valid; allowed: {allowed}")
    derived = reg.flow_class_of(flow) if flow is not None else None
    if stated is not None and derived is not None and stated != derived:
        raise LimitResolutionError(
            f"{where}: flow_class {stated!r} contradicts permitted_flow_m3_per_day {flow:g} "
            f"(band {derived!r}: {reg.flow_classes[derived].label}); correct one of them"
        )
    chosen = stated or derived
    if chosen is None:
        return FlowChoice(
            flow_class=None,
            text="lưu lượng xả thải unknown (no permitted_flow_m3_per_day, no flow_class)",
            verified=False,
        )
    band: FlowClass = reg.flow_classes[chosen]
    how = "stated by the permit (registry)" if stated else f"permitted flow {flow:g} m³/ngày đêm"
    doubt = "" if band.verified else "; band UNVERIFIED"
    return FlowChoice(
        flow_class=chosen,
        text=f"lưu lượng {chosen} ({band.label}; {how}{doubt})",
        verified=band.verified,
    )


def applicable_rules(reg: Regulation, category: str | None, flow_class: str | None) -> list[Rule]:
    """The rules for a point of this category and flow band: per parameter and basis, the most
    specific rows (a category's or a band's row replaces the row written for every point)."""

    def fits(rule: Rule) -> bool:
        return rule.category in (None, category) and rule.flow_class in (None, flow_class)

    def rank(rule: Rule) -> int:
        return (rule.category is not None) + (rule.flow_class is not None)

    best: dict[tuple[str, Basis], int] = {}
    for rule in reg.rules:
        if fits(rule):
            key = (rule.parameter, reg.period_of(rule))
            best[key] = max(best.get(key, 0), rank(rule))
    return [r for r in reg.rules if fits(r) and rank(r) == best[(r.parameter, reg.period_of(r))]]


def rule_id(regulation: str, column: str | None, parameter: str, period: Basis) -> str:
    parts = [regulation, *([column] if column else []), parameter, period.value]
    return ":".join(parts)


def format_limits(limits: Iterable[Limit]) -> str:
    """A plain-text table for the console: one line per limit, its legal basis underneath."""
    limits = list(limits)
    if not limits:
        return "(no limits)"
    rows = [
        (
            lim.rule_id,
            lim.bound_text(),
            lim.unit,
            lim.period.value + ("" if lim.checked else " (yearly report)"),
            "yes" if lim.verified else "UNVERIFIED",
            f"{lim.effective_from or '…'} → {lim.effective_to or '…'}",
        )
        for lim in limits
    ]
    header = ("rule", "limit", "unit", "basis", "verified", "in force")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row, lim in zip(rows, limits, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines.append(f"    {lim.legal_basis}")
        if lim.o2_reference is not None:
            lines.append(f"    corrected to O2 {lim.o2_reference:g} %: {lim.o2_basis}")
        if lim.note:
            lines.append(f"    note: {lim.note}")
    return "\n".join(lines)


def limits_to_json(limits: Iterable[Limit]) -> str:
    return json.dumps([lim.model_dump(mode="json") for lim in limits], ensure_ascii=False, indent=2)


# ---------------------------------------------------------------------------------------------


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _num(x: float | None) -> str:
    return "?" if x is None else f"{x:g}"


def _tidy(x: float) -> float:
    """Drop float noise from products (0.1 × 0.9 = 0.09, not 0.09000000000000001)."""
    return float(f"{x:.12g}")


def _product(coeffs: Mapping[str, float]) -> float:
    product = 1.0
    for value in coeffs.values():
        product *= value
    return product


def _bounds_text(kind: RuleKind, lo: float | None, hi: float | None) -> str:
    if kind is RuleKind.RANGE:
        return f"{_num(lo)}–{_num(hi)}"
    return f"≥ {_num(lo)}" if kind is RuleKind.LOWER else f"≤ {_num(hi)}"


def _check_column(where: str, reg: Regulation, column: str | None) -> None:
    if reg.columns and column not in reg.columns:
        raise LimitResolutionError(
            f"{where}: column {column!r} not valid; allowed: {', '.join(reg.columns)}"
        )
    if not reg.columns and column is not None:
        raise LimitResolutionError(f"{where}: column {column!r} given but {reg.code} has none")


def _check_coefficients(
    where: str, reg: Regulation, coefficients: Mapping[Any, float]
) -> dict[str, float]:
    given = {str(k): float(v) for k, v in coefficients.items()}
    names = reg.coefficients.names if reg.coefficients else []
    if set(given) != set(names):
        want = ", ".join(names) if names else "none"
        raise LimitResolutionError(
            f"{where}: coefficients {sorted(given)} do not match {reg.code}: needs {want} "
            "(the Kq/Kf and Kp/Kv tables are not in the catalogue; take them from the permit)"
        )
    for name, value in given.items():
        if not value > 0:
            raise LimitResolutionError(f"{where}: coefficient {name} must be > 0, got {value}")
    return {name: given[name] for name in names}


def _citation(reg: Regulation, rule: Rule, column: str | None, period: Basis) -> str:
    row = f"dòng {rule.row}" + (f" ({rule.label})" if rule.label != rule.row else "")
    col = f", cột {column}" if column and rule.columns is not None else ""
    group = f", nhóm {rule.category}" if rule.category else ""
    if rule.flow_class:
        group += f", lưu lượng {reg.flow_classes[rule.flow_class].label}"
    return f"{reg.code}, {rule.table}, {row}{group}{col}, {_PERIOD_TEXT[period]}"


def _from_rule(
    source_id: str,
    reg: Regulation,
    rule: Rule,
    column: str | None,
    coeffs: Mapping[str, float],
    unit: str,
) -> Limit:
    cell = rule.cell(column)
    assert cell is not None and not cell.is_gap  # filtered by the caller
    period = reg.period_of(rule)
    factor, unit_note = _unit_factor(rule.unit, unit)
    lo, hi = cell.min, cell.max
    value_text = _bounds_text(rule.kind, lo, hi)
    scheme = reg.coefficients
    multiplied = bool(scheme and scheme.applies_to(rule.parameter, rule.kind) and hi is not None)
    if scheme and multiplied and hi is not None:
        terms = " × ".join(f"{v:g}" for v in coeffs.values())
        c, hi = hi, _tidy(hi * _product(coeffs))
        clause = f" ({scheme.clause})" if scheme.clause else ""
        value_text = f"{scheme.formula}{clause} = {c:g} × {terms} = {hi:g}"
    elif scheme:
        value_text = f"Cmax = C ({scheme.not_applied_text(rule.parameter)}): {value_text}"
    basis = f"{_citation(reg, rule, column, period)}: {value_text} {rule.unit}".rstrip(" -")
    if factor != 1.0:
        lo = None if lo is None else _tidy(lo * factor)
        hi = None if hi is None else _tidy(hi * factor)
        basis += f" (= {_bounds_text(rule.kind, lo, hi)} {unit})"
    lo_date, hi_date = reg.rule_dates(rule)
    band = reg.flow_classes[rule.flow_class] if rule.flow_class else None
    band_note = f"flow band {rule.flow_class} UNVERIFIED" if band and not band.verified else ""
    notes = [n for n in (rule.note, cell.note, band_note, unit_note) if n]
    return Limit(
        rule_id=rule_id(
            reg.id, column if rule.columns is not None else None, rule.parameter, period
        ),
        source_id=source_id,
        regulation=reg.id,
        column=column,
        parameter=rule.parameter,
        kind=rule.kind,
        min=lo,
        max=hi,
        unit=unit,
        period=period,
        legal_basis=basis,
        verified=rule.verified and cell.verified and (band is None or band.verified),
        note="; ".join(notes),
        effective_from=None if lo_date == date.min else lo_date,
        effective_to=None if hi_date == date.max else hi_date,
        coefficients_applied=multiplied,
    )


def _field(override: Any, name: str) -> Any:
    if isinstance(override, Mapping):
        return override.get(name)
    return getattr(override, name, None)


def _apply_override(
    where: str,
    source_id: str,
    reg: Regulation,
    column: str | None,
    parameter: str,
    unit: str,
    catalogue_limits: list[Limit],
    override: Any,
) -> list[Limit]:
    """Replace (or create) the limit of ``parameter`` with the permit's values."""
    hi, lo = _field(override, "max"), _field(override, "min")
    legal = str(_field(override, "basis") or "").strip()
    raw_period = _field(override, "period")
    if not legal:
        raise LimitResolutionError(f"{where}: `basis` (the permit and clause) is required")
    try:
        period = Basis(str(raw_period)) if raw_period is not None else None
    except ValueError:
        allowed = ", ".join(b.value for b in Basis)
        raise LimitResolutionError(f"{where}: period {raw_period!r}; allowed: {allowed}") from None
    if hi is None and lo is None and period is None:
        raise LimitResolutionError(f"{where}: give max, min and/or period")

    if len(catalogue_limits) <= 1:
        target = catalogue_limits[0] if catalogue_limits else None
    else:
        target = next((lim for lim in catalogue_limits if lim.period is period), None)
        if target is None:
            periods = ", ".join(lim.period.value for lim in catalogue_limits)
            raise LimitResolutionError(
                f"{where}: the catalogue has several bases ({periods}); `period` must name one"
            )
    others = [lim for lim in catalogue_limits if lim is not target]
    period = period or (target.period if target else reg.default_period)

    multiplied = False
    if hi is None and lo is None:  # basis change only: keep the catalogue's values
        if target is None:
            raise LimitResolutionError(f"{where}: no catalogue value to re-base; give max/min")
        kind, lo, hi = target.kind, target.min, target.max
        multiplied = target.coefficients_applied
    else:
        hi = None if hi is None else float(hi)
        lo = None if lo is None else float(lo)
        if hi is not None and lo is not None:
            kind = RuleKind.RANGE
            if lo >= hi:
                raise LimitResolutionError(f"{where}: min {lo} must be below max {hi}")
        else:
            kind = RuleKind.UPPER if hi is not None else RuleKind.LOWER
    replaced = f" (thay cho {target.legal_basis})" if target else ""
    if target is not None:  # same id scheme as the rule it replaces, basis possibly changed
        new_id = ":".join([*target.rule_id.split(":")[:-1], period.value])
    else:
        new_id = rule_id(reg.id, column, parameter, period)
    limit = Limit(
        rule_id=new_id,
        source_id=source_id,
        regulation=reg.id,
        column=column,
        parameter=parameter,
        kind=kind,
        min=lo,
        max=hi,
        unit=unit,
        period=period,
        legal_basis=f"{legal}{replaced}",
        verified=True,
        note="permit override",
        overridden=True,
        coefficients_applied=multiplied,
    )
    return [*others, limit]


_MASS_CONC: dict[str, tuple[str, float]] = {
    # normalised spelling -> (dimension, factor to the dimension's base unit)
    "ug/nm3": ("air", 1.0),
    "mg/nm3": ("air", 1e3),
    "g/nm3": ("air", 1e6),
    "ug/m3": ("air", 1.0),
    "mg/m3": ("air", 1e3),
    "g/m3": ("air", 1e6),
    "ug/l": ("water", 1.0),
    "mg/l": ("water", 1e3),
    "g/l": ("water", 1e6),
}
_ALIASES = {"": "-", "ph": "-", "oc": "°c", "c": "°c", "degc": "°c"}


def _norm(unit: str) -> str:
    u = unicodedata.normalize("NFKC", unit).strip().lower().replace(" ", "")
    u = u.replace("μ", "u").replace("µ", "u")
    return _ALIASES.get(u, u)


def _unit_factor(catalogue_unit: str, source_unit: str) -> tuple[float, str]:
    """Factor to express a catalogue value in the source's unit, and a note when it is lenient."""
    a, b = _norm(catalogue_unit), _norm(source_unit)
    if a == b:
        return 1.0, ""
    if a in _MASS_CONC and b in _MASS_CONC and _MASS_CONC[a][0] == _MASS_CONC[b][0]:
        note = ""
        if ("nm3" in a) != ("nm3" in b):
            note = (
                f"limit in {catalogue_unit} compared with values in {source_unit} as if at the "
                "reference conditions (25 °C, 760 mmHg)"
            )
        return _MASS_CONC[a][1] / _MASS_CONC[b][1], note
    raise LimitResolutionError(
        f"unit {source_unit!r} of the source cannot express a limit in {catalogue_unit!r}"
    )

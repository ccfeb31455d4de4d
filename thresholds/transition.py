"""Which of a point's limit sets applies on a date: the permit first, then the transition rules.

A monitoring point may list a regulation and the one replacing it (QCVN 40:2011 and
QCVN 40:2025/BTNMT for wastewater; QCVN 19:2009 and QCVN 19:2024/BTNMT for stacks). The circulars
issuing the new ones let an *existing* facility — operating, or with its EIA approved or permit
documents submitted, before the new regulation takes effect — keep the old regulation until
31/12/2031 (Circular 06/2025/TT-BTNMT Art. 3; Circular 45/2024/TT-BTNMT Art. 3.1); a *new* facility
applies the new regulation from its effective date. Reading implemented (docs/regulations.md §5.3):

1. a limit set the facility's permit imposes (``permit_clause``), from its ``valid_from``, wins
   over the others of its lineage (a permit may require the new regulation before 2032);
2. otherwise, for a regulation and its replacement both listed: new facility → the replacement
   from its ``effective_from`` (the old one before); existing facility → the old one through its
   ``transition_until``, the replacement from the day after;
3. a regulation listed alone is applied as before (its own in-force dates are checked later).

A point whose facility status is unknown is treated as existing (the lenient reading is the
one the law grants by default to a facility already operating), and the reason says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from thresholds.catalogue import Catalogue


class TransitionError(ValueError):
    """A point's limit sets that cannot be chosen between; names the source and regulations."""


class Status(StrEnum):
    """A facility's standing under the transition clauses."""

    EXISTING = "existing"
    NEW = "new"


@dataclass(frozen=True)
class Selected:
    """A limit set chosen for a date, and why (cites the permit or the transition clause)."""

    limit_set: Any  # a registry LimitSet (duck-typed: regulation, column, …)
    reason: str


def lineage(catalogue: Catalogue, regulation: str) -> str:
    """The newest regulation of a chain of replacements (QCVN_40_2011 → QCVN_40_2025)."""
    seen = {regulation}
    current = regulation
    while current in catalogue and catalogue[current].replaced_by:
        nxt = str(catalogue[current].replaced_by)
        if nxt in seen:
            break
        seen.add(nxt)
        current = nxt
    return current


def select_limit_sets(
    source_id: str,
    limit_sets: Sequence[Any],
    catalogue: Catalogue,
    at: date,
    status: Status | str | None,
) -> list[Selected]:
    """The limit sets that apply on ``at``, one per lineage, in the registry's order."""
    groups: dict[str, list[Any]] = {}
    for limit_set in limit_sets:
        groups.setdefault(lineage(catalogue, str(limit_set.regulation)), []).append(limit_set)
    chosen: list[Selected] = []
    for family in groups.values():
        if len(family) == 1:
            chosen.append(Selected(family[0], _alone(family[0], catalogue, status)))
            continue
        if len({str(s.regulation) for s in family}) == 1:
            # the same regulation twice: resolution reports the duplicate rule ids
            chosen += [Selected(s, "") for s in family]
            continue
        chosen.append(_choose(source_id, family, catalogue, at, status))
    order = {id(s): i for i, s in enumerate(limit_sets)}
    return sorted(chosen, key=lambda sel: order[id(sel.limit_set)])


def _choose(
    source_id: str,
    family: list[Any],
    catalogue: Catalogue,
    at: date,
    status: Status | str | None,
) -> Selected:
    imposed = [
        s
        for s in family
        if _attr(s, "permit_clause") and (_attr(s, "valid_from") or date.min) <= at
    ]
    if imposed:
        best = max(imposed, key=lambda s: _attr(s, "valid_from") or date.min)
        since = _attr(best, "valid_from")
        when = f" from {since.isoformat()}" if since else ""
        code = catalogue[str(best.regulation)].code if best.regulation in catalogue else ""
        return Selected(best, f"imposed by the permit{when}: {best.permit_clause} ({code})")

    regs = [str(s.regulation) for s in family]
    names = ", ".join(regs)
    if len(set(regs)) != len(regs) or len(regs) != 2:
        raise TransitionError(
            f"source {source_id}: limit sets {names}: give one regulation and its replacement "
            "(or mark the extra one with the permit clause that imposes it)"
        )
    first, second = family
    if catalogue[str(first.regulation)].replaced_by == str(second.regulation):
        old, new = first, second
    elif catalogue[str(second.regulation)].replaced_by == str(first.regulation):
        old, new = second, first
    else:
        raise TransitionError(f"source {source_id}: limit sets {names}: neither replaces the other")
    old_reg, new_reg = catalogue[str(old.regulation)], catalogue[str(new.regulation)]
    clause = new_reg.transition_clause or "transition clause not catalogued"
    starts = new_reg.effective_from or date.min
    end = old_reg.transition_until or old_reg.effective_to
    state = Status(status) if status is not None else None
    if state is Status.NEW:
        if at >= starts:
            return Selected(
                new, f"new facility: {new_reg.code} applies from {starts.isoformat()} ({clause})"
            )
        return Selected(old, f"before {new_reg.code} took effect on {starts.isoformat()}")
    who = "existing facility" if state is Status.EXISTING else "status not given, read as existing"
    if end is None or at <= end:
        until = f" until {end.isoformat()}" if end else ""
        if at < starts:
            return Selected(old, f"before {new_reg.code} took effect on {starts.isoformat()}")
        return Selected(old, f"{who}: keeps {old_reg.code}{until} ({clause})")
    return Selected(
        new,
        f"{who}: transition for {old_reg.code} ended {end.isoformat()} ({clause}); "
        f"{new_reg.code} applies",
    )


def _alone(limit_set: Any, catalogue: Catalogue, status: Status | str | None) -> str:
    """Why a regulation listed alone applies, when the transition concerns it."""
    reg_id = str(limit_set.regulation)
    if _attr(limit_set, "permit_clause"):
        return f"imposed by the permit: {limit_set.permit_clause}"
    if reg_id not in catalogue or status is None:
        return ""
    reg = catalogue[reg_id]
    if Status(status) is Status.NEW and reg.transition_clause:
        starts = reg.effective_from.isoformat() if reg.effective_from else "its effective date"
        return f"new facility: {reg.code} applies from {starts} ({reg.transition_clause})"
    if Status(status) is Status.EXISTING and reg.replaced_by and reg.transition_until:
        new = catalogue.regulations.get(reg.replaced_by)
        clause = new.transition_clause if new else ""
        return f"existing facility: keeps {reg.code} until {reg.transition_until.isoformat()}" + (
            f" ({clause})" if clause else ""
        )
    return ""


def _attr(obj: Any, name: str) -> Any:
    return getattr(obj, name, None)

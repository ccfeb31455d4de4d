"""Stand-ins for the registry's records in the limit-resolution unit tests (test_limits,
test_transition, test_flow_classes): plain dataclasses with the registry's field names and
defaults (stations/registry.py), and the header of a test catalogue."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass(frozen=True)
class Param:
    code: str
    unit: str


@dataclass(frozen=True)
class LimitSet:
    regulation: str
    column: str | None = None
    coefficients: dict[str, float] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    verified: bool = True
    coefficients_verified: bool = True
    note: str = ""
    category: str | None = None
    flow_class: str | None = None
    permit_clause: str = ""
    valid_from: date | None = None


# A catalogue file's header (thresholds/catalogue.py); a test appends its rules.
HEADER = """\
id: QCVN_99_2099
code: "QCVN 99:2099/BTNMT"
title: test
issuing_act: "Circular 0/2099"
effective_from: 2099-01-01
applies_to: [wastewater]
columns: [A, B]
default_period: "1h"
sources: {S1: "test"}
"""

"""The console's checks on a manual validation request (console/manual_validation.py, issue 21):
pure, no database or broker."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.i18n import MESSAGES
from console.manual_validation import (
    InvalidRequest,
    ValidationRequest,
    as_utc,
    check_request,
)
from core.records import ManualAction, ManualReason
from reports.i18n import has
from storage.manual_validations import Status

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)  # 19:00 in Hải Dương (UTC+7)
MEASURED = ("PM2.5", "SO2", "WS")
HORIZON_H = 72.0


def request(**kw: Any) -> ValidationRequest:
    body: dict[str, Any] = {
        "parameter": "PM2.5",
        "start": (NOW - timedelta(hours=3)).isoformat(),
        "end": (NOW - timedelta(hours=1)).isoformat(),
        "action": "invalidate",
        "reason": "maintenance",
        "note": "",
    }
    return ValidationRequest.model_validate(body | kw)


def check(req: ValidationRequest, measured: tuple[str, ...] | None = MEASURED) -> Any:
    return check_request(req, "HD-KK-01", measured, NOW, HORIZON_H)


def test_a_valid_request_becomes_a_decision_in_utc() -> None:
    d = check(request(note="  filter changed  "))
    assert d.source_id == "HD-KK-01" and d.parameter == "PM2.5"
    assert d.start == NOW - timedelta(hours=3) and d.start.tzinfo is UTC
    assert d.end == NOW - timedelta(hours=1)
    assert d.action is ManualAction.INVALIDATE and d.reason is ManualReason.MAINTENANCE
    assert d.note == "filter changed"


def test_naive_times_are_local_time_and_offsets_are_kept() -> None:
    # the form sends datetime-local values: 16:00 in Asia/Ho_Chi_Minh is 09:00 UTC
    d = check(request(start="2026-12-05T16:00", end="2026-12-05T17:30"))
    assert d.start == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    assert d.end == datetime(2026, 12, 5, 10, 30, tzinfo=UTC)
    assert as_utc(datetime.fromisoformat("2026-12-05T10:00+01:00")) == datetime(
        2026, 12, 5, 9, 0, tzinfo=UTC
    )


@pytest.mark.parametrize("parameter", [None, "", "  "])
def test_no_parameter_means_every_parameter(parameter: str | None) -> None:
    assert check(request(parameter=parameter)).parameter is None


def test_other_with_a_note_and_a_restore_are_accepted() -> None:
    d = check(request(action="restore", reason="other", note="the analyser was fine after all"))
    assert d.action is ManualAction.RESTORE and d.reason is ManualReason.OTHER


def test_a_period_of_exactly_31_days_starting_at_the_horizon_is_accepted() -> None:
    # horizon 800 h here so that a 31-day period can start inside it
    start = NOW - timedelta(hours=800)
    req = request(start=start.isoformat(), end=(start + timedelta(days=31)).isoformat())
    assert check_request(req, "HD-KK-01", MEASURED, NOW, 800.0).end == start + timedelta(days=31)


@pytest.mark.parametrize(
    ("kw", "measured", "status", "words"),
    [
        ({}, None, 404, "no source 'HD-KK-01'"),
        ({"parameter": "COD"}, MEASURED, 422, "does not measure 'COD'"),
        ({"parameter": "PM2.5"}, (), 422, "none registered"),
        (
            {"start": NOW.isoformat(), "end": NOW.isoformat()},
            MEASURED,
            422,
            "must end after it starts",
        ),
        (
            {
                "start": (NOW - timedelta(hours=1)).isoformat(),
                "end": (NOW - timedelta(hours=2)).isoformat(),
            },
            MEASURED,
            422,
            "must end after it starts",
        ),
        (
            {
                "start": (NOW + timedelta(minutes=1)).isoformat(),
                "end": (NOW + timedelta(hours=1)).isoformat(),
            },
            MEASURED,
            422,
            "starts in the future",
        ),
        ({"reason": "other", "note": "   "}, MEASURED, 422, "reason 'other' needs a note"),
        (
            {
                "start": (NOW - timedelta(hours=73)).isoformat(),
                "end": (NOW - timedelta(hours=70)).isoformat(),
            },
            MEASURED,
            422,
            "older than the late horizon (72 h before now",
        ),
    ],
    ids=[
        "unknown-source",
        "parameter-not-measured",
        "source-without-parameters",
        "empty-period",
        "end-before-start",
        "future-start",
        "other-without-note",
        "beyond-late-horizon",
    ],
)
def test_refusals_say_why(
    kw: dict[str, Any], measured: tuple[str, ...] | None, status: int, words: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check(request(**kw), measured)
    assert caught.value.status == status
    assert words in str(caught.value)


def test_a_period_longer_than_31_days_is_refused() -> None:
    start = NOW - timedelta(hours=800)
    req = request(start=start.isoformat(), end=(start + timedelta(days=31, minutes=1)).isoformat())
    with pytest.raises(InvalidRequest, match="longer than 31 days") as caught:
        check_request(req, "HD-KK-01", MEASURED, NOW, 800.0)
    assert caught.value.status == 422


def test_the_late_horizon_message_says_the_averages_are_final() -> None:
    req = request(start="2026-12-01T00:00", end="2026-12-01T06:00")
    with pytest.raises(InvalidRequest) as caught:
        check(req)
    text = str(caught.value)
    assert "2026-12-01 00:00 +07" in text and "averages are final" in text


@pytest.mark.parametrize(
    "kw",
    [{"action": "delete"}, {"reason": "boredom"}, {"note": "x" * 2001}, {"start": "yesterday"}],
)
def test_the_body_schema_refuses_unknown_values(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        request(**kw)


def test_every_word_of_the_section_and_the_report_is_translated() -> None:
    """The template's literal keys, and the keys built from the closed vocabularies (reason,
    action, status), exist in Vietnamese and English: a missing one would show as its key."""
    template = Path(__file__).parents[2] / "console/templates/_manual_validation.html"
    literal = set(re.findall(r"t\('([a-z_0-9]+)'\)", template.read_text(encoding="utf-8")))
    built = {f"mv_reason_{r.value}" for r in ManualReason}
    built |= {f"mv_action_{a.value}" for a in ManualAction}
    built |= {f"mv_status_{s.value}" for s in Status}
    assert literal and not (literal | built) - set(MESSAGES)
    keys = {f"manual.reason.{r.value}" for r in ManualReason}
    keys |= {f"manual.{a.value}" for a in ManualAction}
    keys |= {"sec.manual_validation", "note.manual_validation", "manual_invalid", "all_parameters"}
    keys |= {"manual_id", "manual_action", "manual_reason", "decided_by", "decided_at"}
    keys |= {"applied", "applied_at", "period_start", "period_end", "manual_readings"}
    assert all(has(k) for k in keys), [k for k in keys if not has(k)]

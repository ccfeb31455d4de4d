"""Notification routing, grouping, signing and message text (notify/; pure logic)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notify import channels, messages
from notify.rules import (
    Action,
    EventView,
    Route,
    RulesError,
    decide,
    load_rules,
    matches,
    parse_rules,
)
from notify.service import backoff_s

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
RULES = {
    "channels": {
        "duty": {"type": "email", "to": ["duty@example.vn", "lab@example.vn"]},
        "ops": {"type": "webhook", "url": "https://user:pw@ops.example.vn/hook?token=abc"},
        "chief": {"type": "email", "to": ["chief@example.vn"]},
    },
    "routes": [
        {
            "name": "wastewater",
            "match": {"kinds": ["exceedance"], "facilities": ["F-DAIAN"], "min_severity": "1.5-2"},
            "channels": ["duty", "ops"],
            "group_window_minutes": 30,
            "escalate": {"after_minutes": 15, "channels": ["chief"]},
        },
        {"name": "air", "match": {"parameters": ["PM2.5"], "min_ratio": 1.2}, "channels": ["ops"]},
    ],
}


def ev(event: str = "opened", **kw: object) -> EventView:
    base: dict[str, object] = dict(
        violation_id="V1",
        seq=0,
        event=event,
        source_id="HD-NT-01",
        facility_id="F-DAIAN",
        parameter="COD",
        rule_id="qcvn40-cod",
        severity="2-3",
        ratio=2.4,
    )
    base.update(kw)
    return EventView(**base)  # type: ignore[arg-type]


def route(name: str = "wastewater") -> Route:
    return next(r for r in parse_rules(RULES).routes if r.name == name)


def test_rules_parse_and_redact_recipients() -> None:
    rules = parse_rules(RULES)
    assert [r.name for r in rules.routes] == ["wastewater", "air"]
    assert rules.channels["duty"].recipient() == "duty@example.vn, lab@example.vn"
    # user information and query may carry a token: never shown in the delivery log
    assert rules.channels["ops"].recipient() == "https://ops.example.vn/hook"
    assert rules.channel_types() == {"email", "webhook"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"routes": [{"name": "x", "channels": ["nope"]}]}, "channel 'nope' is not one of"),
        ({"routes": [{"name": "x", "channels": ["duty"], "match": {"kinds": ["fire"]}}]}, "kinds"),
        (
            {"routes": [{"name": "x", "channels": ["duty"], "match": {"min_severity": "big"}}]},
            "min_severity",
        ),
        ({"routes": [{"name": "x", "channels": ["duty"], "colour": "red"}]}, "colour"),
        (
            {"routes": [{"name": "x", "channels": ["duty"]}, {"name": "x", "channels": ["duty"]}]},
            "route name 'x' is used twice",
        ),
        ({"channels": {"m": {"type": "email", "to": ["not-an-address"]}}}, "channels.m.email.to"),
        ({"channels": {"w": {"type": "webhook", "url": "ftp://x"}}}, "channels.w.webhook.url"),
        ({"channels": {"s": {"type": "sms"}}}, "channels.s"),
    ],
)
def test_bad_rules_are_named(change: dict[str, object], expected: str) -> None:
    data = {**RULES, **change}
    with pytest.raises(RulesError, match=r"^rules\.yaml: ") as info:
        parse_rules(data, "rules.yaml")
    assert expected in str(info.value)


def test_load_rules_errors(tmp_path: Path) -> None:
    assert load_rules(None).routes == ()
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: [\n")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(bad)
    bad.write_text("- a list\n")
    with pytest.raises(RulesError, match="want a mapping"):
        load_rules(bad)


def test_example_rules_file_is_valid() -> None:
    rules = load_rules(Path(__file__).parents[2] / "deploy" / "notify-rules.example.yaml")
    assert rules.routes and rules.channels


@pytest.mark.parametrize(
    ("event", "want"),
    [
        (ev(), True),
        (ev(facility_id="F-OTHER"), False),
        (ev(facility_id=None), False),
        (ev(severity="1.1-1.5"), False),  # below the band
        (ev(severity=">=10"), True),
        (ev(severity="made-up"), False),  # unknown: not provably severe enough
        (ev(event="outage_opened"), False),  # kind outage
        (ev(event="warning"), False),  # kind warning
    ],
)
def test_match(event: EventView, want: bool) -> None:
    assert matches(route().match, event) is want


def test_match_ratio_for_ambient() -> None:
    air = route("air").match
    assert matches(air, ev(parameter="PM2.5", severity="none", ratio=1.3))
    assert not matches(air, ev(parameter="PM2.5", severity="none", ratio=1.1))
    assert not matches(air, ev(parameter="PM2.5", severity="none", ratio=None))


def test_episode_is_one_message() -> None:
    r = route()
    assert decide(r, ev(), episode_announced=False, last_group_message_at=None, now=NOW) is (
        Action.SEND
    )
    for e in (ev("updated", seq=1), ev("corrected", seq=2)):
        got = decide(r, e, episode_announced=True, last_group_message_at=NOW, now=NOW)
        assert got is Action.FOLD
    # closing an announced episode: only when the route asks for it
    closed = ev("closed", seq=3, severity="none")
    assert decide(r, closed, episode_announced=True, last_group_message_at=NOW, now=NOW) is (
        Action.SKIP
    )
    r_close = r.model_copy(update={"notify_close": True})
    assert decide(r_close, closed, episode_announced=True, last_group_message_at=NOW, now=NOW) is (
        Action.CLOSE
    )
    assert decide(
        r_close, closed, episode_announced=False, last_group_message_at=None, now=NOW
    ) is (Action.SKIP)


def test_episode_grows_into_a_route() -> None:
    """Opened below the route's band, then updated into it: the update is the first message."""
    r = route()
    low, high = ev(severity="1.1-1.5"), ev("updated", seq=1, severity="2-3")
    assert decide(r, low, episode_announced=False, last_group_message_at=None, now=NOW) is (
        Action.SKIP
    )
    assert decide(r, high, episode_announced=False, last_group_message_at=None, now=NOW) is (
        Action.SEND
    )


def test_rate_limit_window_groups_new_episodes() -> None:
    r = route()  # 30-minute window
    second = ev(violation_id="V2")
    inside = decide(
        r,
        second,
        episode_announced=False,
        last_group_message_at=NOW - timedelta(minutes=29),
        now=NOW,
    )
    after = decide(
        r,
        second,
        episode_announced=False,
        last_group_message_at=NOW - timedelta(minutes=30),
        now=NOW,
    )
    assert (inside, after) == (Action.GROUP, Action.SEND)


def test_signature_round_trip_and_refusals() -> None:
    body = channels.body_bytes({"b": 1, "a": "ư"})
    assert body == '{"a":"ư","b":1}'.encode()
    now = int(time.time())
    header = channels.sign("s3cret", now, body)
    assert header.startswith(f"t={now},v1=")
    assert channels.verify("s3cret", header, body, now=now)
    assert not channels.verify("other", header, body, now=now)
    assert not channels.verify("s3cret", header, body + b" ", now=now)
    assert not channels.verify("s3cret", header, body, now=now + 301)  # a replay
    assert not channels.verify("s3cret", "garbage", body, now=now)
    # HMAC-SHA256 over "<t>." + body, known answer
    assert channels.sign("key", 1, b"{}") == (
        "t=1,v1=" + __import__("hmac").new(b"key", b"1.{}", "sha256").hexdigest()
    )


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_s(n, 10, 100) for n in (1, 2, 3, 4, 5, 9)] == [10, 20, 40, 80, 100, 100]


def test_message_text() -> None:
    payload = {
        "violation_id": "HD-NT-01/COD/qcvn40/2026-12-05T01:00:00+00:00",
        "event": "opened",
        "source_id": "HD-NT-01",
        "parameter": "COD",
        "rule_id": "qcvn40",
        "period": "1h",
        "started_at": "2026-12-05T01:00:00+00:00",
        "at": "2026-12-05T02:00:00+00:00",
        "value": 101.25,
        "limit": 67.5,
        "ratio": 1.5,
        "severity": "1.5-2",
        "legal_basis": "QCVN 40:2025/BTNMT, Table 1",
    }
    subject = messages.subject("episode", payload)
    assert subject == "[quantrac] opened: HD-NT-01 COD 101.2 vs limit 67.5 ×1.50 band 1.5-2"
    assert messages.subject("escalation", payload).startswith(
        "[quantrac] ESCALATION, unacknowledged: HD-NT-01 COD"
    )
    doc = messages.document(
        delivery="episode:r:c:V",
        kind="episode",
        route="r",
        violation=payload,
        console_url="https://console.example.vn/",
    )
    assert doc["url"] == f"https://console.example.vn/violations/{payload['violation_id']}"
    text = messages.email_text(subject, doc)
    assert "05/12/2026 08:00" in text  # started 01:00 UTC = 08:00 local
    assert "QCVN 40:2025/BTNMT, Table 1" in text
    assert "Acknowledge in the console: https://console.example.vn/violations/" in text


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"notify_webhook_secret": "CHANGE-ME"}, "QUANTRAC_NOTIFY_WEBHOOK_SECRET is a placeholder"),
        ({"notify_webhook_secret": ""}, "QUANTRAC_NOTIFY_WEBHOOK_SECRET is empty"),
        ({"notify_smtp_user": "quantrac"}, "QUANTRAC_NOTIFY_SMTP_PASSWORD is empty"),
    ],
)
def test_notify_secrets_are_checked_at_start(fields: dict[str, str], named: str) -> None:
    from core.settings import Settings
    from streams.secret_check import SecretError, check_secrets

    with pytest.raises(SecretError, match=named) as info:
        check_secrets(Settings.model_validate(fields))
    assert "CHANGE-ME" not in str(info.value)  # the variable is named, never its value
    real = {"notify_webhook_secret": "k2V9q-real-random", "notify_smtp_password": "x7!Rr-real"}
    check_secrets(Settings.model_validate({**fields, **real}))


def test_batch_adds_a_violation_to_a_queued_message() -> None:
    lead = {
        "source_id": "HD-NT-05",
        "parameter": "COD",
        "event": "opened",
        "value": 90.0,
        "limit": 75.0,
        "ratio": 1.2,
        "severity": "1.1-1.5",
        "violation_id": "A",
    }
    doc = messages.document(
        delivery="d", kind="episode", route="r", violation=lead, console_url=None
    )
    doc, subject = messages.batch("episode", doc, {**lead, "parameter": "TN", "violation_id": "B"})
    doc, subject = messages.batch("episode", doc, {**lead, "parameter": "TSS", "violation_id": "C"})
    assert subject == "[quantrac] opened: HD-NT-05 COD 90 vs limit 75 ×1.20 band 1.1-1.5 " + (
        "(+2 more: TN, TSS)"
    )
    assert [a["violation_id"] for a in doc["also"]] == ["B", "C"]
    assert doc["violation"]["violation_id"] == "A"
    text = messages.email_text(subject, doc)
    assert "- TN (): 90 / 75, severity 1.1-1.5, id B" in text

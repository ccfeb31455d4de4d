"""What a notification says: its subject, its JSON document and its e-mail text (pure).

The JSON document is built once, when the delivery is queued, and stored with it: every retry
sends the same bytes, and the delivery log shows exactly what went out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # the stations' clock (thresholds/averaging.py)
SCHEMA = "quantrac.notification/1"
HEADLINES = {
    "episode": "violation",
    "closed": "closed",
    "escalation": "ESCALATION, unacknowledged",
}


def _num(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value:.4g}"


def subject(kind: str, v: dict[str, Any]) -> str:
    """One line: what, where, how bad. ``v`` is a violation event's payload."""
    event = str(v.get("event", ""))
    what = "data outage" if event.startswith("outage") else event or "violation"
    if kind == "episode":
        head = "early warning" if event == "warning" else what
    else:
        head = HEADLINES.get(kind, kind)
    parts = [f"[quantrac] {head}: {v.get('source_id', '?')} {v.get('parameter', '?')}"]
    if v.get("value") is not None and v.get("limit") is not None:
        parts.append(f"{_num(v.get('value'))} vs limit {_num(v.get('limit'))}")
    if isinstance(v.get("ratio"), int | float):
        parts.append(f"×{v['ratio']:.2f}")
    if v.get("severity") not in (None, "", "none"):
        parts.append(f"band {v['severity']}")
    return " ".join(parts)


def document(
    *,
    delivery: str,
    kind: str,
    route: str,
    violation: dict[str, Any],
    console_url: str | None,
    unacknowledged_minutes: float | None = None,
) -> dict[str, Any]:
    """The webhook body (and the data of the e-mail): stable across retries."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "delivery": delivery,
        "kind": kind,
        "route": route,
        "violation": violation,
    }
    if console_url:
        doc["url"] = f"{console_url.rstrip('/')}/violations/{violation.get('violation_id', '')}"
    if unacknowledged_minutes is not None:
        doc["unacknowledged_minutes"] = round(unacknowledged_minutes, 1)
    return doc


def batch(kind: str, doc: dict[str, Any], violation: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Add ``violation`` to a message queued in the same round for the same source (a plant
    upset raises several parameters at once: one message, not one per parameter). Returns the
    new document and subject."""
    also = [*doc.get("also", []), violation]
    new = {**doc, "also": also}
    names = ", ".join(str(v.get("parameter", "?")) for v in also)
    return new, f"{subject(kind, doc.get('violation', {}))} (+{len(also)} more: {names})"


def _local(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return "—"
    try:
        return datetime.fromisoformat(value).astimezone(LOCAL_TZ).strftime("%d/%m/%Y %H:%M")
    except ValueError:
        return value


def email_text(subject_line: str, doc: dict[str, Any]) -> str:
    """Plain-text e-mail body: the facts an operator acts on, local times, the console link."""
    v: dict[str, Any] = doc.get("violation", {})
    lines = [subject_line, ""]
    if doc.get("kind") == "escalation":
        lines += [
            f"Not acknowledged for {doc.get('unacknowledged_minutes', '?')} minutes "
            f"after the first notice (route {doc.get('route')}).",
            "",
        ]
    rows = [
        ("Source", v.get("source_id")),
        ("Parameter", v.get("parameter")),
        ("Rule", f"{v.get('rule_id', '')} ({v.get('period', '')})"),
        ("Event", v.get("event")),
        ("Started (local)", _local(v.get("started_at"))),
        ("At (local)", _local(v.get("at"))),
        ("Value / limit", f"{_num(v.get('value'))} / {_num(v.get('limit'))}"),
        ("Peak", _num(v.get("peak_value"))),
        ("Severity", v.get("severity")),
        ("Legal basis", v.get("legal_basis") or "—"),
        ("Violation id", v.get("violation_id")),
    ]
    lines += [f"{k + ':':<17}{val}" for k, val in rows]
    if v.get("message"):
        lines += ["", str(v["message"])]
    if doc.get("also"):
        lines += ["", "Also at this source, in the same notice:"]
        for a in doc["also"]:
            lines.append(
                f"- {a.get('parameter')} ({a.get('rule_id', '')}): {_num(a.get('value'))} / "
                f"{_num(a.get('limit'))}, severity {a.get('severity')}, id {a.get('violation_id')}"
            )
    if doc.get("url"):
        lines += ["", f"Acknowledge in the console: {doc['url']}"]
    lines += ["", f"Delivery {doc.get('delivery')} (a repeat with this id is the same notice)."]
    return "\n".join(lines) + "\n"

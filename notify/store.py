"""The notifier's outbox and delivery log in PostgreSQL (migration 0012).

Why the ``violation_events`` table and not a Kafka consumer group on ``violations``: the
notifier needs the database anyway (acknowledgements for escalation, the delivery log, the
rate-limit history), and there one transaction can mark an event seen *and* queue its
deliveries, so planning is exactly-once without coordinating offsets with database commits; the
events are there at-least-once and idempotently (the worker acks them only after the commit).
Sending is at-least-once: a delivery is marked sent only after its channel confirmed it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from notify import messages
from notify.rules import (
    Action,
    EventView,
    Route,
    Rules,
    decide,
    dedupe_key,
    group_key,
)

PLAN_LOCK = 0x71_6E_6F_74  # pg_advisory_xact_lock key: one planner at a time ("qnot")
# Once the planner has drained every unseen event, 'since' moves up to now() - this lag: an event
# row becomes visible when its transaction commits but carries that transaction's start time, so
# the lag covers writer transactions of up to an hour (the worker's last seconds). The scan then
# covers the last hour, not every event since the first start.
WATERMARK_LAG_S = 3600.0
MAX_ERROR = 500
MAX_BATCH = 50  # violations in one message at most; a bigger upset starts another message

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Delivery:
    id: int
    dedupe_key: str
    kind: str
    route: str
    channel: str
    channel_type: str
    violation_id: str
    subject: str
    payload: dict[str, Any]
    attempts: int


def ensure_since(conn: Conn) -> datetime:
    """The start of the news: events recorded before the notifier first ran are not sent."""
    conn.execute(
        "INSERT INTO notification_state (key, value) VALUES ('since', now()) "
        "ON CONFLICT (key) DO NOTHING"
    )
    row = conn.execute("SELECT value FROM notification_state WHERE key = 'since'").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


_UNSEEN = """
SELECT e.violation_id, e.seq, e.event, e.severity, e.ratio, e.payload, s.facility_id
  FROM violation_events e
  LEFT JOIN sources s ON s.id = e.payload->>'source_id'
 WHERE e.recorded_at >= (SELECT value FROM notification_state WHERE key = 'since')
   AND NOT EXISTS (SELECT 1 FROM notification_seen n
                    WHERE n.violation_id = e.violation_id AND n.seq = e.seq)
 ORDER BY e.recorded_at, e.violation_id, e.seq
 LIMIT %s
"""

_INSERT = """
INSERT INTO notification_deliveries (dedupe_key, kind, route, channel, channel_type, recipient,
    violation_id, source_id, group_key, grouped_into, subject, payload, status)
VALUES (%(key)s, %(kind)s, %(route)s, %(channel)s, %(type)s, %(recipient)s, %(vid)s, %(source)s,
    %(group)s, %(into)s, %(subject)s, %(payload)s, %(status)s)
ON CONFLICT (dedupe_key) DO NOTHING
"""


def plan(conn: Conn, rules: Rules, console_url: str | None, *, limit: int = 500) -> Counter[str]:
    """Turn unseen events into queued deliveries (one transaction); counts actions taken."""
    actions: Counter[str] = Counter()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PLAN_LOCK,))
        now_row = conn.execute("SELECT now()").fetchone()
        assert now_row is not None
        now: datetime = now_row[0]
        events = conn.execute(_UNSEEN, (limit,)).fetchall()
        for vid, seq, event, severity, ratio, payload, facility in events:
            ev = EventView(
                violation_id=vid,
                seq=seq,
                event=event,
                source_id=str(payload.get("source_id", "")),
                facility_id=facility,
                parameter=str(payload.get("parameter", "")),
                rule_id=str(payload.get("rule_id", "")),
                severity=severity,
                ratio=ratio,
            )
            for route in rules.routes:
                action = _plan_route(conn, rules, route, ev, payload, console_url, now)
                actions[action.value] += 1
            conn.execute(
                "INSERT INTO notification_seen (violation_id, seq) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING",
                (vid, seq),
            )
        if len(events) < limit:  # drained: everything recorded before the lag has been seen
            conn.execute(
                "UPDATE notification_state SET value = greatest(value,"
                " now() - make_interval(secs => %s)) WHERE key = 'since'",
                (WATERMARK_LAG_S,),
            )
            # marks far below the watermark can never be asked for again
            conn.execute(
                "DELETE FROM notification_seen WHERE seen_at <"
                " (SELECT value FROM notification_state WHERE key = 'since') - interval '1 day'"
            )
    return actions


def _plan_route(
    conn: Conn,
    rules: Rules,
    route: Route,
    ev: EventView,
    payload: dict[str, Any],
    console_url: str | None,
    now: datetime,
) -> Action:
    announced = conn.execute(
        "SELECT 1 FROM notification_deliveries WHERE violation_id = %s AND route = %s "
        "AND kind = 'episode' LIMIT 1",
        (ev.violation_id, route.name),
    ).fetchone()
    gkey = group_key(route.name, ev)
    last = conn.execute(
        "SELECT max(created_at) FROM notification_deliveries WHERE group_key = %s "
        "AND kind = 'episode' AND status <> 'grouped'",
        (gkey,),
    ).fetchone()
    action = decide(
        route,
        ev,
        episode_announced=announced is not None,
        last_group_message_at=last[0] if last else None,
        now=now,
    )
    if action in (Action.SKIP, Action.FOLD):
        return action
    kind = "closed" if action is Action.CLOSE else "episode"
    for name in route.channels:
        channel = rules.channels[name]
        key = dedupe_key(kind, route.name, name, ev.violation_id)
        into = None
        if action is Action.GROUP:
            row = conn.execute(
                "SELECT id FROM notification_deliveries WHERE group_key = %s AND channel = %s "
                "AND kind = 'episode' AND status <> 'grouped' ORDER BY created_at DESC, id DESC "
                "LIMIT 1",
                (gkey, name),
            ).fetchone()
            into = row[0] if row else None
        doc = messages.document(
            delivery=key, kind=kind, route=route.name, violation=payload, console_url=console_url
        )
        status = "grouped" if action is Action.GROUP else "pending"
        if action is not Action.GROUP:
            lead = _batch_lead(conn, kind, route.name, name, ev.source_id)
            if lead is not None:  # same source, same round: into that message
                into, lead_doc = lead
                lead_doc, lead_subject = messages.batch(kind, lead_doc, payload)
                conn.execute(
                    "UPDATE notification_deliveries SET payload = %s, subject = %s WHERE id = %s",
                    (Jsonb(lead_doc), lead_subject, into),
                )
                status = "grouped"
        conn.execute(
            _INSERT,
            {
                "key": key,
                "kind": kind,
                "route": route.name,
                "channel": name,
                "type": channel.type,
                "recipient": channel.recipient(),
                "vid": ev.violation_id,
                "source": ev.source_id,
                "group": gkey,
                "into": into,
                "subject": messages.subject(kind, payload),
                "payload": Jsonb(doc),
                "status": status,
            },
        )
    return action


def _batch_lead(
    conn: Conn, kind: str, route: str, channel: str, source: str
) -> tuple[int, dict[str, Any]] | None:
    """A message of this kind, route and channel for ``source`` queued by this very planning
    transaction (created_at is the transaction's now()), if any: its id and document."""
    row = conn.execute(
        "SELECT id, payload FROM notification_deliveries WHERE kind = %s AND route = %s"
        " AND channel = %s AND source_id = %s AND status = 'pending' AND attempts = 0"
        " AND created_at = now() AND coalesce(jsonb_array_length(payload->'also'), 0) < %s"
        " ORDER BY id LIMIT 1",
        (kind, route, channel, source, MAX_BATCH - 1),
    ).fetchone()
    return (int(row[0]), dict(row[1])) if row else None


_OVERDUE = """
SELECT d.violation_id, extract(epoch FROM now() - min(d.created_at)) / 60.0 AS minutes,
       min(d.source_id) AS source_id, to_jsonb(v) AS violation
  FROM notification_deliveries d
  JOIN violations v ON v.violation_id = d.violation_id
 WHERE d.route = %(route)s AND d.kind = 'episode' AND d.status <> 'grouped'
   AND v.acknowledged_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM notification_deliveries x
                    WHERE x.kind = 'escalation' AND x.route = d.route
                      AND x.violation_id = d.violation_id)
 GROUP BY d.violation_id, v.violation_id
HAVING min(d.created_at) <= now() - make_interval(secs => %(after)s)
"""


def escalate(conn: Conn, rules: Rules, console_url: str | None) -> int:
    """Queue, once, an escalation for each announced violation still unacknowledged after its
    route's delay (measured from the episode's first message); returns how many were queued.
    A grouped episode rides on its group's message and escalation: a flapping limit is one
    escalation too, not one per flap."""
    queued = 0
    with conn.transaction():
        for route in rules.routes:
            if route.escalate is None:
                continue
            overdue = conn.execute(
                _OVERDUE, {"route": route.name, "after": route.escalate.after_minutes * 60.0}
            ).fetchall()
            for vid, minutes, source, violation in overdue:
                violation = _escalation_view(violation)
                for name in route.escalate.channels:
                    channel = rules.channels[name]
                    key = dedupe_key("escalation", route.name, name, vid)
                    doc = messages.document(
                        delivery=key,
                        kind="escalation",
                        route=route.name,
                        violation=violation,
                        console_url=console_url,
                        unacknowledged_minutes=float(minutes),
                    )
                    cur = conn.execute(
                        _INSERT,
                        {
                            "key": key,
                            "kind": "escalation",
                            "route": route.name,
                            "channel": name,
                            "type": channel.type,
                            "recipient": channel.recipient(),
                            "vid": vid,
                            "source": source,
                            "group": f"{route.name}|{source}|{violation.get('rule_id', '')}",
                            "into": None,
                            "subject": messages.subject("escalation", violation),
                            "payload": Jsonb(doc),
                            "status": "pending",
                        },
                    )
                    queued += cur.rowcount
    return queued


def _escalation_view(row: dict[str, Any]) -> dict[str, Any]:
    """The violation's current row in the shape of an event payload (the messages read it)."""
    view = {k: v for k, v in row.items() if not k.startswith("ack")}
    view["event"] = "escalation"
    view["at"] = row.get("last_at")
    return view


def next_due(conn: Conn) -> Delivery | None:
    """Lock the next due pending delivery (the caller's transaction holds it while sending)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT id, dedupe_key, kind, route, channel, channel_type, violation_id, subject,"
            " payload, attempts FROM notification_deliveries"
            " WHERE status = 'pending' AND next_attempt_at <= now()"
            " ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
        ).fetchone()
    return Delivery(**row) if row else None


def acknowledged(conn: Conn, violation_id: str) -> bool:
    row = conn.execute(
        "SELECT acknowledged_at IS NOT NULL FROM violations WHERE violation_id = %s",
        (violation_id,),
    ).fetchone()
    return bool(row and row[0])


def mark_sent(conn: Conn, d: Delivery) -> None:
    conn.execute(
        "UPDATE notification_deliveries SET status = 'sent', attempts = attempts + 1,"
        " sent_at = now(), last_error = NULL WHERE id = %s",
        (d.id,),
    )


def mark_cancelled(conn: Conn, d: Delivery, why: str) -> None:
    conn.execute(
        "UPDATE notification_deliveries SET status = 'cancelled', last_error = %s WHERE id = %s",
        (why, d.id),
    )


def mark_failed(conn: Conn, d: Delivery, error: str, retry_in_s: float | None) -> None:
    """Record a failed attempt: due again in ``retry_in_s``, or given up (None)."""
    conn.execute(
        "UPDATE notification_deliveries SET attempts = attempts + 1, last_error = %s,"
        " status = CASE WHEN %s::float8 IS NULL THEN 'failed' ELSE 'pending' END,"
        " next_attempt_at = now() + make_interval(secs => coalesce(%s::float8, 0))"
        " WHERE id = %s",
        (error[:MAX_ERROR], retry_in_s, retry_in_s, d.id),
    )


def pending_count(conn: Conn) -> int:
    row = conn.execute(
        "SELECT count(*) FROM notification_deliveries WHERE status = 'pending'"
    ).fetchone()
    return int(row[0]) if row else 0

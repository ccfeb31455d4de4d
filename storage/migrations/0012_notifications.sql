-- Notifications (notify/, issue 21): the outbox and delivery log of `quantrac notify`.
--
-- The notifier reads violation_events (already persisted at-least-once, idempotently) and, in
-- one transaction per batch, marks each event seen and inserts the deliveries it calls for; a
-- delivery is marked sent only after its channel confirmed it. A crash therefore repeats at
-- most a send that was not yet confirmed (at-least-once), and the unique dedupe_key keeps a
-- re-planned event from queueing a delivery twice.

CREATE TABLE notification_deliveries (
    id               bigserial PRIMARY KEY,
    dedupe_key       text NOT NULL UNIQUE,     -- kind:route:channel:violation_id
    kind             text NOT NULL CHECK (kind IN ('episode', 'closed', 'escalation')),
    route            text NOT NULL,
    channel          text NOT NULL,            -- the channel's name in the rules file
    channel_type     text NOT NULL,            -- email | webhook | file
    recipient        text NOT NULL,            -- addresses or URL, credentials removed
    violation_id     text NOT NULL,
    source_id        text NOT NULL,
    group_key        text NOT NULL,            -- route|source|rule: the rate-limit window's key
    grouped_into     bigint REFERENCES notification_deliveries (id),
    subject          text NOT NULL,
    payload          jsonb NOT NULL,           -- what is sent (webhook body, e-mail content)
    status           text NOT NULL
                     CHECK (status IN ('pending', 'sent', 'failed', 'grouped', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX notification_deliveries_recent ON notification_deliveries (created_at DESC);
CREATE INDEX notification_deliveries_group ON notification_deliveries (group_key, created_at DESC);
CREATE INDEX notification_deliveries_violation ON notification_deliveries (violation_id, route);

-- Events the planner has handled (whether or not they called for a message).
CREATE TABLE notification_seen (
    violation_id  text NOT NULL,
    seq           integer NOT NULL,
    seen_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (violation_id, seq)
);

-- 'since': events recorded before the notifier first ran are history, not news.
CREATE TABLE notification_state (
    key    text PRIMARY KEY,
    value  timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS violation_events_recorded ON violation_events (recorded_at);

-- Forwarding (issue 20): the delivery ledger of archived original files to downstream
-- receivers (the national system, a city platform). One row per (destination, archived file):
-- the unique key makes enqueueing idempotent (a rescan after a restart adds nothing), and the
-- row's state is the at-least-once record (a file is 'delivered' only after the receiver has
-- it under its final name, or acknowledged it over HTTP). streams/forwarding.py fills and
-- drains it; the console's /forwarding page and the forwarder's metrics read it.
CREATE TABLE forward_queue (
    id bigserial PRIMARY KEY,
    destination text NOT NULL,
    archive_path text NOT NULL,            -- <local date>/<source id>/<file name>
    source_id text NOT NULL,
    remote_name text NOT NULL,             -- the file name the receiver gets
    size_bytes bigint NOT NULL,
    sha256 text NOT NULL,                  -- of the archived bytes, checked again before sending
    archived_at timestamptz NOT NULL,      -- the archived file's modification time
    queued_at timestamptz NOT NULL DEFAULT now(),
    state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_error text,
    delivered_at timestamptz,
    UNIQUE (destination, archive_path)
);
-- The head of each source's queue per destination (delivery is in order per source).
CREATE INDEX forward_queue_pending ON forward_queue (destination, source_id, id)
    WHERE state = 'queued';
-- The console's and the metrics' view: what is not delivered, and the recent deliveries.
CREATE INDEX forward_queue_open ON forward_queue (destination, id) WHERE state <> 'delivered';
CREATE INDEX forward_queue_delivered ON forward_queue (destination, delivered_at)
    WHERE state = 'delivered';
-- Where each destination's scan of the archive has reached (a local date folder).
CREATE TABLE forward_cursor (
    destination text PRIMARY KEY,
    scanned_day date NOT NULL
);

-- quantrac core schema. Primary keys make every write idempotent: a replay writes nothing twice.
-- Times are timestamptz (UTC); local-time alignment happens in the pipeline and in the views.

CREATE TABLE sources (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    kind         text NOT NULL,            -- stations.parameters.SourceKind
    district     text NOT NULL,
    lat          double precision,
    lon          double precision,
    facility_id  text,
    facility     text,
    permit       text,
    interval_s   integer NOT NULL,
    spec         jsonb NOT NULL,           -- the registry entry as loaded (parameters, limits)
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE readings (
    source_id    text NOT NULL,
    parameter    text NOT NULL,
    measured_at  timestamptz NOT NULL,
    value        double precision NOT NULL, -- in `unit`, the registry's unit
    unit         text NOT NULL,
    status       char(2) NOT NULL,          -- Circular 10 device status 00/01/02
    flag         text NOT NULL,             -- streams.records.QcFlag
    raw_value    double precision NOT NULL,
    raw_unit     text NOT NULL,
    received_at  timestamptz NOT NULL,
    channel      text NOT NULL,
    origin       text NOT NULL,
    PRIMARY KEY (source_id, parameter, measured_at)
);

CREATE TABLE averages (
    source_id     text NOT NULL,
    parameter     text NOT NULL,
    period        text NOT NULL,            -- streams.records.Period
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    value         double precision,
    unit          text NOT NULL,
    samples       integer NOT NULL,
    expected      integer NOT NULL,
    completeness  double precision NOT NULL,
    valid         boolean NOT NULL,
    revision      integer NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, parameter, period, window_start)
);

CREATE TABLE aqi (
    source_id     text NOT NULL,
    kind          text NOT NULL,            -- hourly | daily
    window_start  timestamptz NOT NULL,
    aqi           integer,
    category      text,
    dominant      text,
    sub_indices   jsonb NOT NULL,
    PRIMARY KEY (source_id, kind, window_start)
);

CREATE TABLE violations (
    violation_id  text PRIMARY KEY,         -- deterministic: source/parameter/rule/episode
    kind          text NOT NULL,            -- exceedance | outage
    source_id     text NOT NULL,
    parameter     text NOT NULL,
    rule_id       text NOT NULL,
    period        text NOT NULL,
    state         text NOT NULL,            -- open | closed
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    last_at       timestamptz NOT NULL,
    value         double precision,
    "limit"       double precision,
    ratio         double precision,
    peak_value    double precision,
    peak_ratio    double precision,
    severity      text NOT NULL,
    legal_basis   text NOT NULL DEFAULT '',
    last_seq      integer NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text,
    ack_note      text
);
CREATE INDEX violations_open ON violations (state, last_at DESC);
CREATE INDEX violations_source ON violations (source_id, started_at DESC);

CREATE TABLE violation_events (
    violation_id  text NOT NULL,
    seq           integer NOT NULL,
    event         text NOT NULL,
    at            timestamptz NOT NULL,
    value         double precision,
    ratio         double precision,
    severity      text NOT NULL,
    payload       jsonb NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (violation_id, seq)
);

CREATE TABLE acknowledgements (
    id            bigserial PRIMARY KEY,
    violation_id  text NOT NULL REFERENCES violations (violation_id),
    username      text NOT NULL,
    note          text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now()
);

-- The dead letter: every input that could not be accepted, with its exact bytes.
CREATE TABLE rejections (
    rejection_id  text PRIMARY KEY,         -- hash of channel, origin, line, reason, bytes
    reason        text NOT NULL,
    message       text NOT NULL,
    channel       text NOT NULL,
    source_id     text,
    origin        text NOT NULL,
    line          integer,
    field         text,
    original      bytea NOT NULL,
    received_at   timestamptz NOT NULL
);
CREATE INDEX rejections_time ON rejections (received_at DESC);

CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL,
    detail  jsonb NOT NULL DEFAULT '{}'
);

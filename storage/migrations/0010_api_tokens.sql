-- API tokens for machine clients (issue 20): the open-data API (scope read) and the gateway's
-- HTTP ingest (scope ingest, for the listed sources). The secret is shown once at creation;
-- only its SHA-256 is kept (a 256-bit random secret needs no slow hash: no dictionary to try),
-- so a database dump lets no one in. ``id`` is the public part of the token, for lookup.
CREATE TABLE api_tokens (
    id            text PRIMARY KEY CHECK (id ~ '^[a-z0-9]{8}$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    secret_hash   text NOT NULL,             -- sha256 hex of the whole token string
    scope         text NOT NULL CHECK (scope IN ('read', 'ingest')),
    sources       text[] NOT NULL DEFAULT '{}', -- ingest: the sources it may post for
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL,
    expires_at    timestamptz,               -- NULL: never
    revoked_at    timestamptz,
    revoked_by    text,
    last_used_at  timestamptz,
    CHECK (scope <> 'ingest' OR cardinality(sources) > 0)
);

-- Every use, counted per token, minute, door, route and outcome: one upsert per request
-- instead of an audit_log row each (a polling client makes thousands a day); refusals of a
-- known token (revoked, expired, out of scope, rate-limited) are counted here too.
CREATE TABLE api_token_uses (
    token_id  text NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    minute    timestamptz NOT NULL,
    door      text NOT NULL,                 -- console | gateway
    route     text NOT NULL,
    outcome   text NOT NULL,                 -- ok | revoked | expired | scope | rate_limited
    ip        text NOT NULL,
    n         integer NOT NULL,
    PRIMARY KEY (token_id, minute, door, route, outcome, ip)
);
CREATE INDEX api_token_uses_minute ON api_token_uses (minute DESC);

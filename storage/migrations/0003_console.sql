-- Alert console: users with roles, server-side sessions, and the login attempts that throttle
-- password guessing. Session ids are stored hashed, so a database dump cannot log anyone in.

CREATE TABLE users (
    username       text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    password_hash  text NOT NULL,             -- argon2id, PHC string
    role           text NOT NULL CHECK (role IN ('operator', 'regulator', 'admin')),
    full_name      text NOT NULL DEFAULT '',
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL DEFAULT ''
);

CREATE TABLE sessions (
    id_hash     text PRIMARY KEY,             -- sha256 of the cookie value
    username    text NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    ip          text NOT NULL DEFAULT '',
    user_agent  text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (username);

CREATE TABLE login_attempts (
    id        bigserial PRIMARY KEY,
    username  text NOT NULL,
    ip        text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    success   boolean NOT NULL
);
CREATE INDEX login_attempts_recent ON login_attempts (username, ip, at DESC);

CREATE INDEX audit_log_target ON audit_log (target, at DESC);

-- Scheduled monthly reports (reports/scheduler.py, `quantrac scheduler`): one row per report
-- kind, subject (a source id) and local month, so a second run, a second scheduler or a restart
-- never makes the same report twice.
--
-- The file itself is kept here (bytea) rather than under a directory: the scheduler and the
-- console are separate processes (pods in production) that share the database but no disk, a
-- monthly report is tens to hundreds of kB, and a row commits the file, its checksum and its
-- status together, and is backed up with the database it was built from.
CREATE TABLE IF NOT EXISTS scheduled_reports (
    id          bigserial PRIMARY KEY,
    kind        text        NOT NULL,          -- compliance | air-quality (reports/model.py)
    subject     text        NOT NULL,          -- the source id the report is about
    facility    text,                          -- the source's facility (compliance), for the mail
    period      text        NOT NULL,          -- local month, YYYY-MM
    status      text        NOT NULL CHECK (status IN ('done', 'failed', 'refused')),
    format      text        NOT NULL,
    lang        text        NOT NULL,
    filename    text,
    media_type  text,
    content     bytea,                         -- the rendered file (status 'done')
    size_bytes  integer,
    sha256      text,
    error       text,                          -- failed (retried) or refused (cannot be built)
    attempts    integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    mailed_at   timestamptz,                   -- sent to the kind's recipients
    mailed_to   text[],
    mail_error  text,
    mail_attempts integer NOT NULL DEFAULT 0,
    UNIQUE (kind, subject, period),
    CHECK (status <> 'done' OR content IS NOT NULL)
);

CREATE INDEX IF NOT EXISTS scheduled_reports_period ON scheduled_reports (period DESC, kind);

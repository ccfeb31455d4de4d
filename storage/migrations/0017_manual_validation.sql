-- Manual validation (issue 21): an operator invalidates a period of a source's data (a
-- maintenance visit, a calibration the datalogger did not flag, an analyser fault) or restores
-- it. The console stores each decision here, audited, and produces it to readings.raw; the
-- worker applies it in order with the source's readings and says when (applied_at).
CREATE TABLE IF NOT EXISTS manual_validations (
    id            bigserial PRIMARY KEY,
    source_id     text NOT NULL,
    parameter     text,                     -- NULL: every parameter of the source
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL,
    action        text NOT NULL CHECK (action IN ('invalidate', 'restore')),
    reason        text NOT NULL
                  CHECK (reason IN ('maintenance', 'calibration', 'analyser_fault', 'other')),
    note          text NOT NULL DEFAULT '',
    by_user       text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    applied_at    timestamptz,              -- set by the worker once applied
    CHECK (period_end > period_start)
);
CREATE INDEX IF NOT EXISTS manual_validations_source
    ON manual_validations (source_id, period_start DESC);

-- A reading's position on readings.raw (offset × 1024 + index, core.records.POSITION_STRIDE):
-- which readings a manual decision found stored before it. NULL for rows stored before this.
ALTER TABLE readings ADD COLUMN IF NOT EXISTS raw_position bigint;
-- The invalidation in force for the reading (NULL: none); the QC flag stays the automatic one.
ALTER TABLE readings ADD COLUMN IF NOT EXISTS manual_id bigint;

-- A violation a late correction showed never was (its data invalidated by hand, or revised by
-- late readings): kept with its events, closed, and said to be retracted.
ALTER TABLE violations ADD COLUMN IF NOT EXISTS retracted boolean NOT NULL DEFAULT false;

-- A violation judged from a station's backlog (issue 18): its window ended more than
-- QUANTRAC_FOUND_LATE_AFTER_HOURS before the worker judged it (a datalogger resending after an
-- outage). The verdict is the regulation's as for data on time; only the alert came late.
ALTER TABLE violations ADD COLUMN IF NOT EXISTS found_late boolean NOT NULL DEFAULT false;

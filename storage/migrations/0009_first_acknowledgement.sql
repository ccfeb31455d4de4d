-- Acknowledgements keep their history: each is its own row in ``acknowledgements`` (since 0001)
-- and a violation's acknowledged_at, acknowledged_by and ack_note are those of the FIRST one.
-- Until this release the console overwrote them with each new acknowledgement: restore the first
-- from the history, which was always kept.
UPDATE violations v
   SET acknowledged_at = a.at, acknowledged_by = a.username, ack_note = a.note
  FROM (SELECT DISTINCT ON (violation_id) violation_id, at, username, note
          FROM acknowledgements
         ORDER BY violation_id, at, id) a
 WHERE a.violation_id = v.violation_id
   AND (v.acknowledged_at IS DISTINCT FROM a.at
        OR v.acknowledged_by IS DISTINCT FROM a.username
        OR v.ack_note IS DISTINCT FROM a.note);

-- A violation's history is read by violation, oldest first (console detail, evidence report).
CREATE INDEX IF NOT EXISTS acknowledgements_violation ON acknowledgements (violation_id, at, id);

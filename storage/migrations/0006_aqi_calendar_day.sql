-- Daily VN_AQI on the local calendar day (issue 15): Decision 1459/QĐ-TCMT labels a day's hourly
-- values 1:00 … 0:00 by their hour ends, so the day is the hours starting 00:00–23:00 local
-- (docs/regulations.md §10.3). Earlier versions stored days starting at 01:00 local; those rows
-- are one hour off and would sit beside the right ones (reports key daily rows by date). They are
-- recomputed by the worker from the averages when their data is replayed; here they are removed.
-- Local time is Asia/Ho_Chi_Minh (UTC+7, no DST), the worker's.
DELETE FROM aqi
WHERE kind = 'daily'
  AND extract(hour FROM window_start AT TIME ZONE 'Asia/Ho_Chi_Minh') <> 0;

-- Rollups on plain PostgreSQL: ordinary views with the same names and columns as the
-- TimescaleDB continuous aggregates (0002_rollups.timescale.sql), so readers never care which.
-- Buckets are local days/months (Asia/Ho_Chi_Minh), as regulators count them.

CREATE VIEW readings_daily AS
SELECT source_id, parameter,
       (date_trunc('day', measured_at AT TIME ZONE 'Asia/Ho_Chi_Minh')
            AT TIME ZONE 'Asia/Ho_Chi_Minh') AS bucket,
       count(*) AS n_all,
       count(*) FILTER (WHERE flag = 'valid') AS n_valid,
       avg(value) FILTER (WHERE flag = 'valid') AS mean,
       min(value) FILTER (WHERE flag = 'valid') AS min,
       max(value) FILTER (WHERE flag = 'valid') AS max
FROM readings
GROUP BY 1, 2, 3;

CREATE VIEW readings_monthly AS
SELECT source_id, parameter,
       (date_trunc('month', measured_at AT TIME ZONE 'Asia/Ho_Chi_Minh')
            AT TIME ZONE 'Asia/Ho_Chi_Minh') AS bucket,
       count(*) AS n_all,
       count(*) FILTER (WHERE flag = 'valid') AS n_valid,
       avg(value) FILTER (WHERE flag = 'valid') AS mean,
       min(value) FILTER (WHERE flag = 'valid') AS min,
       max(value) FILTER (WHERE flag = 'valid') AS max
FROM readings
GROUP BY 1, 2, 3;

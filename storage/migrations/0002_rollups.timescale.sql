-- quantrac: no-transaction
-- TimescaleDB: hypertables, compression, retention and continuous aggregates.
-- Applied instead of 0002_rollups.plain.sql when the timescaledb extension is available.
-- Retention is set from settings at migrate time (storage/migrate.py), not here.

CREATE EXTENSION IF NOT EXISTS timescaledb;

SELECT create_hypertable('readings', by_range('measured_at', INTERVAL '7 days'),
                         migrate_data => true, if_not_exists => true);
SELECT create_hypertable('averages', by_range('window_start', INTERVAL '30 days'),
                         migrate_data => true, if_not_exists => true);
SELECT create_hypertable('aqi', by_range('window_start', INTERVAL '90 days'),
                         migrate_data => true, if_not_exists => true);

ALTER TABLE readings SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'source_id, parameter',
    timescaledb.compress_orderby = 'measured_at DESC');
SELECT add_compression_policy('readings', INTERVAL '30 days', if_not_exists => true);
ALTER TABLE averages SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'source_id, parameter, period',
    timescaledb.compress_orderby = 'window_start DESC');
SELECT add_compression_policy('averages', INTERVAL '90 days', if_not_exists => true);

-- Continuous aggregates bucket in local time (time_bucket with a timezone).
CREATE MATERIALIZED VIEW IF NOT EXISTS readings_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT source_id, parameter,
       time_bucket(INTERVAL '1 day', measured_at, 'Asia/Ho_Chi_Minh') AS bucket,
       count(*) AS n_all,
       count(*) FILTER (WHERE flag = 'valid') AS n_valid,
       avg(value) FILTER (WHERE flag = 'valid') AS mean,
       min(value) FILTER (WHERE flag = 'valid') AS min,
       max(value) FILTER (WHERE flag = 'valid') AS max
FROM readings
GROUP BY source_id, parameter, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('readings_daily',
    start_offset => INTERVAL '10 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes', if_not_exists => true);

CREATE MATERIALIZED VIEW IF NOT EXISTS readings_monthly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT source_id, parameter,
       time_bucket(INTERVAL '1 month', measured_at, 'Asia/Ho_Chi_Minh') AS bucket,
       count(*) AS n_all,
       count(*) FILTER (WHERE flag = 'valid') AS n_valid,
       avg(value) FILTER (WHERE flag = 'valid') AS mean,
       min(value) FILTER (WHERE flag = 'valid') AS min,
       max(value) FILTER (WHERE flag = 'valid') AS max
FROM readings
GROUP BY source_id, parameter, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('readings_monthly',
    start_offset => INTERVAL '3 months', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 day', if_not_exists => true);

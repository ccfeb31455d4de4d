-- Surface water (issue 15): QCVN 08:2023 classifies the water body; it limits no one. One row per
-- surface-water station and local day: the class, the VN_WQI (Decision 1460/QĐ-TCMT) and whether
-- the class is worse than the station's target class (a department water quality alert, counted
-- apart from source violations). Small (10 stations × 365 days a year): a plain table in both
-- flavours. The primary key and the revision make a replay write nothing twice.
CREATE TABLE water_quality_days (
    source_id          text NOT NULL,
    day                date NOT NULL,             -- local date (Asia/Ho_Chi_Minh)
    day_start          timestamptz NOT NULL,
    water_class        text,                      -- A..D; NULL when nothing could be classified
    target_class       text,
    alert              boolean NOT NULL,          -- water_class worse than target_class
    wqi                integer,
    wqi_meets_minimum  boolean NOT NULL,
    wqi_groups         jsonb NOT NULL,
    wqi_note           text NOT NULL DEFAULT '',
    means              jsonb NOT NULL,
    classes            jsonb NOT NULL,
    skipped            jsonb NOT NULL,
    over_table1        jsonb NOT NULL,
    revision           integer NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, day)
);
CREATE INDEX water_quality_days_alert ON water_quality_days (alert, day DESC);

-- Where the gateway archived each reading's and rejection's original (issue 16): the path
-- relative to the archive root, <local date>/<source id>/<file name>. Evidence packages read
-- originals only from this path, and only under the violation's own source folder
-- (reports/evidence.py); nothing looks files up by name any more. NULL: not archived (simulator,
-- feeds, a quarantined body) or written before this migration.
-- Plain ADD COLUMN (nullable, no default): TimescaleDB allows it on compressed hypertables.
ALTER TABLE readings ADD COLUMN archive_path text;
ALTER TABLE rejections ADD COLUMN archive_path text;

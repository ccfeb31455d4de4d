-- Decree 45/2022/NĐ-CP bands only where the decree puts them (docs/regulations.md §8b): a
-- violation of a wastewater outfall or a stack shows the article and clause of its band, the
-- sanction text, whether a source confirms it, and the flow bracket its fine is chosen by, with
-- the flow used ("permitted" from the registry, or "measured"). Ambient stations have no band:
-- these stay NULL (and so do rows written before this migration).
ALTER TABLE violations
    ADD COLUMN IF NOT EXISTS penalty_article  text,
    ADD COLUMN IF NOT EXISTS penalty_sanction text,
    ADD COLUMN IF NOT EXISTS penalty_verified boolean,
    ADD COLUMN IF NOT EXISTS flow_bracket     text,
    ADD COLUMN IF NOT EXISTS flow_basis       text,
    ADD COLUMN IF NOT EXISTS flow_value       double precision;

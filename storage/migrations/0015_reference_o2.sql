-- Reference-O2 correction of stack limits (issue 19; thresholds/reference_o2.py): a stack
-- violation's value and peak are concentrations at the reference O2 (C × (21 − O2_ref) /
-- (21 − O2)); these keep the measured values and the window's O2 they were corrected from, the
-- reference and where it comes from. NULL where no correction applies (and for older rows).
ALTER TABLE violations
    ADD COLUMN IF NOT EXISTS measured_value      double precision,
    ADD COLUMN IF NOT EXISTS o2_measured         double precision,
    ADD COLUMN IF NOT EXISTS o2_reference        double precision,
    ADD COLUMN IF NOT EXISTS peak_measured_value double precision,
    ADD COLUMN IF NOT EXISTS peak_o2_measured    double precision,
    ADD COLUMN IF NOT EXISTS correction_basis    text;

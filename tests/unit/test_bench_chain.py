"""``bench.chain``: the fused chain offline gives every reading one verdict, and the same
outputs run after run (an A/B of two versions compares like with like)."""

from bench.chain import run


def test_the_offline_chain_judges_every_reading_once_and_repeats_itself() -> None:
    first, again = run(hours=1.0, batch=500), run(hours=1.0, batch=500)
    assert first.readings > 10_000 and first.messages < first.readings
    assert first.outputs[("validate_readings", "QcReading")] == first.readings
    assert first.outputs[("average_readings", "Average")] > 0
    assert again.outputs == first.outputs and again.readings == first.readings
    assert first.us_per_reading > 0

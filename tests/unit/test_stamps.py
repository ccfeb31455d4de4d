"""thresholds/stamps.py: the timestamps QA/QC remembers, as runs, behave as a set of ints."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from thresholds.averaging import decode_runs, encode_runs
from thresholds.stamps import Stamps

# (add t) or (forget before t); mostly a regular cadence, with steps back and gaps
OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "add", "forget"]),
        st.one_of(st.just(60), st.just(300), st.integers(-900, 900)),
    ),
    max_size=200,
)


@settings(max_examples=400)
@given(ops=OPS, probes=st.lists(st.integers(-2000, 40_000), max_size=30))
def test_stamps_hold_what_a_set_holds(ops: list[tuple[str, int]], probes: list[int]) -> None:
    stamps, model, t = Stamps(), set[int](), 10_000
    for op, dt in ops:
        t += dt
        if op == "add":
            if t not in model:
                assert t not in stamps
                stamps.add(t)
                model.add(t)
        else:
            cutoff = t - 1800
            stamps.forget_before(cutoff)
            model = {s for s in model if s >= cutoff}
        assert len(stamps) == len(model) and bool(stamps) == bool(model)
    for p in [*probes, *model]:
        assert (p in stamps) == (p in model)
    runs = stamps.runs()
    assert decode_runs(runs) == sorted(model)
    again = Stamps(runs)  # as loaded from the stored state
    assert all(p in again for p in model) and len(again) == len(model)


def test_a_regular_cadence_is_one_run_and_a_late_one_stays_exact() -> None:
    stamps = Stamps()
    for k in range(4320):  # 72 h of a 1-minute series
        stamps.add(60 * k)
    assert stamps.runs() == [[0, 60, 4320]]
    stamps.add(90)  # a late reading between two in the run
    assert 90 in stamps and 91 not in stamps
    assert stamps.runs() == encode_runs(sorted([*range(0, 60 * 4320, 60), 90]))
    stamps.forget_before(60 * 4000 + 1)
    assert stamps.runs() == [[60 * 4001, 60, 319]] and 90 not in stamps

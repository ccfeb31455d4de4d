"""The collector is paused for a batch and resumes when the last overlapping batch ends
(streams/collector.py; the runner's use of it: tests/unit/test_runner.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams import collector


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_paused_inside_the_block_and_on_after_it() -> None:
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlapping_batches_resume_it_when_the_last_one_ends() -> None:
    first, second = collector.paused(), collector.paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second batch still runs
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with collector.paused():
        pass
    assert not gc.isenabled()


def test_a_block_that_raises_resumes_it() -> None:
    with pytest.raises(ValueError), collector.paused():
        raise ValueError("a failed batch")
    assert gc.isenabled()

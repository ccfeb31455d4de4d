"""The collector is paused for a batch and resumes when the last overlapping batch ends
(streams/collector.py; the runner's use of it: tests/unit/test_runner.py)."""

from __future__ import annotations

import asyncio
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


def test_a_pause_that_outlasts_its_bound_lets_the_collector_run_again() -> None:
    async def waiting_batch() -> tuple[bool, bool]:
        with collector.paused(longest_s=0.05):
            before = gc.isenabled()
            await asyncio.sleep(0.2)  # e.g. storing through a database outage
            return before, gc.isenabled()

    assert asyncio.run(waiting_batch()) == (False, True)
    assert gc.isenabled()


def test_a_pause_that_ends_in_time_leaves_no_deadline_behind() -> None:
    async def batches() -> list[bool]:
        with collector.paused(longest_s=0.1):  # its deadline would come at 0.1 s
            await asyncio.sleep(0.02)
        with collector.paused(longest_s=10):  # spans 0.1 s
            await asyncio.sleep(0.2)
            return [gc.isenabled()]

    assert asyncio.run(batches()) == [False]
    assert gc.isenabled()

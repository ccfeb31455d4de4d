"""streams/worker.py: the collector settings and the event loop a worker runs with."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
import uvloop

from core.settings import Settings
from streams.worker import GC_THRESHOLDS, tune_gc, use_event_loop


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_start_up_objects_are_frozen_and_young_ones_collected_less_often() -> None:
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700  # CPython's default, which cost 16 % of a replay's CPU
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored_gc")
def test_cycles_are_still_collected() -> None:
    tune_gc()
    assert gc.isenabled()
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


@pytest.fixture
def restored_policy() -> Iterator[None]:
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


@pytest.mark.usefixtures("restored_policy")
@pytest.mark.parametrize(
    ("on", "name", "kind"),
    [(True, "uvloop", uvloop.Loop), (False, "asyncio", asyncio.BaseEventLoop)],
)
def test_the_loops_made_after_start_up_are_the_configured_kind(
    on: bool, name: str, kind: type
) -> None:
    assert use_event_loop(Settings(uvloop=on)) == name
    loop = asyncio.new_event_loop()  # as the worker's consumer thread makes its own
    try:
        assert isinstance(loop, kind)
        assert isinstance(loop, uvloop.Loop) == on
    finally:
        loop.close()

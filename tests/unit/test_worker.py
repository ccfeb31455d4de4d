"""streams/worker.py: the collector settings and the event loop a worker runs with."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[2]
_HEAP_CHURN = """
import ctypes, ctypes.util, sys
from streams.worker import fix_heap_thresholds
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
if sys.argv[1] == "fixed":
    assert fix_heap_thresholds()
libc.free(libc.malloc(1 << 20))  # a big fetch buffer comes and goes
base = rss_mib()
big, small = [], []
for _ in range(200):  # 50 MiB of 256 KiB buffers between small blocks that stay
    block = libc.malloc(256 * 1024)
    libc.memset(block, 1, 256 * 1024)
    big.append(block)
    small.append(libc.malloc(1024))
for block in big:
    libc.free(block)
print(rss_mib() - base)
"""


# fixed: nothing kept, and RSS may even fall by a few pages the interpreter gave back meanwhile
@pytest.mark.parametrize(("thresholds", "kept_mib"), [("fixed", (-5, 5)), ("glibc's", (40, 60))])
def test_freed_large_blocks_go_back_to_the_os_once_the_heap_thresholds_are_fixed(
    thresholds: str, kept_mib: tuple[float, float]
) -> None:
    """glibc raises its mmap threshold when a large mapped block is freed; later large blocks
    then come from the heap, and freed between blocks that stay they are never given back
    (streams/worker.py). In a fresh process, so the heap is this test's alone."""
    done = subprocess.run(
        [sys.executable, "-c", _HEAP_CHURN, thresholds],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    low, high = kept_mib
    assert low <= float(done.stdout) <= high

"""``quantrac worker``: migrate, create topics, run the Faust worker until SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging

import faust
import uvloop

from core.settings import Settings
from core.topics import ensure_topics
from stations.registry import load_registry
from storage.migrate import migrate
from storage.sources import sync_sources
from streams.app import create_app

log = logging.getLogger(__name__)

# A worker holds a large, slowly growing heap of long-lived state (series windows, QC state,
# Faust tables) and allocates many short-lived records per message. With CPython's default
# thresholds (700, 10, 10) the collector took 16 % of a 400 k-reading replay's CPU (19 of
# 122 s, 69 full collections); freezing what start-up built and collecting the young
# generation 14x less often took it to 4 s, and the replay from 3,669 to 4,258 readings/s
# (make bench, 2026-12-01). Cycles are still collected.
GC_THRESHOLDS = (10_000, 50, 100)


def tune_gc() -> None:
    """Move everything built so far out of the collector's sight and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# glibc malloc serves what pymalloc does not (blocks over 512 bytes: fetched and produced
# message buffers, big lists and dicts) and, by default, raises its mmap threshold each time a
# large mmapped block is freed, up to 32 MiB: after the first big fetch buffer goes, every
# later one is carved out of the heap, and the holes they leave between long-lived blocks are
# never given back. On a 1 M-reading replay the heap's free memory grew from 7 to 38 MiB while
# its memory in use stayed at 60-68 MiB: most of the worker's RSS growth. Fixing the thresholds
# (which turns the adjustment off) keeps blocks of 128 KiB and more in their own mappings,
# returned to the OS when freed, and trims the heap's top past 128 KiB free.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
HEAP_THRESHOLDS_BYTES = 128 * 1024  # glibc's defaults, made fixed


def fix_heap_thresholds() -> bool:
    """Fix glibc malloc's mmap and trim thresholds; False where the C library is not glibc
    (it has no mallopt, or refuses the parameters)."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(
        mallopt(param, HEAP_THRESHOLDS_BYTES) == 1 for param in (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD)
    )


def use_event_loop(settings: Settings) -> str:
    """Every event loop made from now on (the worker's, its consumer thread's) is uvloop's,
    unless ``settings.uvloop`` is off; returns which. The loop's own dispatch was a sixth of
    the worker's CPU on a replay with asyncio's loop; with uvloop's (libuv, in C) the worker
    took 95–101 µs a reading against 105–112 (a 300 k replay, 2026-12-06)."""
    if not settings.uvloop:
        asyncio.set_event_loop_policy(None)
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def run_worker(settings: Settings) -> None:
    assert settings.kafka_url and settings.database_url
    log.info("event loop: %s", use_event_loop(settings))
    log.info("heap thresholds fixed: %s", fix_heap_thresholds())
    migrate(settings.database_url)
    sync_sources(settings.database_url, load_registry(settings.registry_path))
    ensure_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, redirect_stdouts=False)
    tune_gc()
    worker.execute_from_commandline()  # installs SIGINT/SIGTERM handlers; exits the process

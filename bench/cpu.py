"""CPU seconds of the processes a measurement runs on: the workers, the broker, the database.

On the bench machine the workers share its cores with the broker and PostgreSQL. Two workers can
then go at most as fast as the cores allow for what a reading costs all of them together; a
ratio to one worker above that bound cannot be measured here, whatever the workers do. The meter
makes the bound a number of the same run:

    bound (readings/s) = cores / (CPU seconds of every process of the run per reading)

A group is a set of root processes and, at each snapshot, their descendants (PostgreSQL's
backends are the postmaster's children). A process that ended between two snapshots is not
counted: the bench's own count(*) polls each open a backend that exits at once, and their cost is
the bench's, not the pipeline's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psutil

# group → pid → CPU seconds (user + system) of that process so far
Snapshot = dict[str, dict[int, float]]


def cores() -> int:
    """The cores this process (and the services it started) may run on."""
    return len(os.sched_getaffinity(0))


def _cpu(p: psutil.Process) -> float | None:
    try:
        t = p.cpu_times()
    except psutil.Error:  # ended since it was listed
        return None
    return float(t.user + t.system)


@dataclass(frozen=True)
class CpuMeter:
    """CPU seconds per group of processes between two snapshots."""

    groups: Mapping[str, Sequence[int]]  # group name → root pids

    def snapshot(self) -> Snapshot:
        snap: Snapshot = {}
        for name, pids in self.groups.items():
            seen: dict[int, float] = {}
            for pid in pids:
                try:
                    root = psutil.Process(pid)
                    procs = [root, *root.children(recursive=True)]
                except psutil.Error:
                    continue
                for p in procs:
                    cpu = _cpu(p)
                    if cpu is not None:
                        seen[p.pid] = cpu
            snap[name] = seen
        return snap

    def seconds(self, before: Snapshot, after: Snapshot) -> dict[str, float]:
        """CPU seconds each group spent from ``before`` to ``after`` (a process that started in
        between counts from zero)."""
        return {
            name: sum(cpu - before.get(name, {}).get(pid, 0.0) for pid, cpu in now.items())
            for name, now in after.items()
        }


def per_reading(seconds: Mapping[str, float], readings: int, wall_s: float) -> dict[str, float]:
    """µs of CPU per reading, per group and in all, and the cores-bound rate they imply."""
    us = {name: round(s / readings * 1e6, 1) for name, s in seconds.items()}
    total = sum(seconds.values())
    return {
        **{f"{name}_us": v for name, v in us.items()},
        "total_us": round(total / readings * 1e6, 1),
        "cores_busy": round(total / wall_s, 2),  # of cores(): how busy the run kept them
        "cores": cores(),
        "cores_bound_readings_per_s": round(cores() * readings / total, 1),
    }

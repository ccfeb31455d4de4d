"""The bench's CPU meter (bench/cpu.py) on real processes: a group counts its roots and their
descendants, and the bound follows from what was counted."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.cpu import CpuMeter, cores, per_reading

# a parent that sleeps while its child burns 1 s of CPU, says so, then both wait to be killed
PARENT = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', sys.argv[1]]); time.sleep(60)"
)
BURN = "import time; t = time.process_time(); exec('while time.process_time() - t < 1.0: pass'); "
BURN += "import sys; sys.stdout.write('done'); sys.stdout.flush(); time.sleep(60)"


def test_a_group_counts_the_cpu_of_its_roots_descendants() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, BURN], stdout=subprocess.PIPE)
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        meter = CpuMeter({"burner": [parent.pid], "idle": [idle.pid]})
        time.sleep(0.3)  # the child has burnt at most 0.3 s of its 1 s by now
        before = meter.snapshot()
        assert parent.stdout is not None and parent.stdout.read(4) == b"done"
        seconds = meter.seconds(before, meter.snapshot())
    finally:
        parent.kill()
        idle.kill()
        parent.wait()
        idle.wait()
    # at least the 0.7 s the child burnt after the first snapshot are the burner's
    assert 0.65 < seconds["burner"] < 1.5
    assert seconds["idle"] < 0.1  # its start-up at most


def test_a_process_that_started_between_snapshots_counts_from_zero() -> None:
    meter = CpuMeter({"g": [123]})
    before = {"g": {123: 1.0}}
    after = {"g": {123: 1.5, 456: 0.25}}  # 456 started in between; 789 ended: not counted
    assert meter.seconds(before, after) == {"g": 0.75}


def test_the_bound_is_the_cores_over_the_cpu_a_reading_costs() -> None:
    cpu = per_reading({"workers": 2.0, "broker": 0.5}, readings=25_000, wall_s=2.0)
    assert cpu["workers_us"] == 80.0 and cpu["broker_us"] == 20.0 and cpu["total_us"] == 100.0
    assert cpu["cores_busy"] == 1.25
    assert cpu["cores_bound_readings_per_s"] == cores() * 10_000

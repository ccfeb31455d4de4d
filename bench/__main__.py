"""``python -m bench`` (``make bench``): every benchmark in one process tree and one run.

Starts a fresh embedded Tansu broker and embedded PostgreSQL under a temporary directory, then
measures (1) the limits: raw produce/consume rate and COPY rate; (2)–(5) the pipeline: one
worker replaying 1 M readings (throughput, the year extrapolated from it, RSS every 100 k), then
latency at 100× and nominal load, then one worker and two on the same 24-hour replay
(bench/pipeline.py), each throughput phase with the CPU its workers, the broker and the
database spent (bench/cpu.py); and finally the export benchmark (bench/bench_export.py).
Prints a table and writes ``bench/results/bench-<date>.json``.

    python -m bench [--replay-hours 24] [--latency-seconds 60] [--fast-seconds 30]
                    [--limit-readings 200000] [--export-days 90] [--replay-readings 1000000]
                    [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import bench_export
from bench.limits import run_limits
from bench.pipeline import Plan, fresh_database, run_pipeline, year_extrapolation
from streams.embedded import EmbeddedBroker, EmbeddedPostgres

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(mem_kib / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def _f(x: Any, digits: int = 0) -> str:
    if x is None:
        return "—"
    if isinstance(x, float | int):
        return f"{x:,.{digits}f}"
    return str(x)


#: Issue 18's targets, each checked against numbers measured in the same run.
PROVINCE_YEAR_READINGS = 50_000_000


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target, the value measured, and whether it is met (the gap is in the numbers)."""
    p, lim = report["pipeline"], report["limits"]
    one, two = p["one_worker"], p["two_workers"]
    consume = lim["consume"]["readings_per_s"]
    rss = [mib for n, mib in p["memory"]["rss_by_readings"] if n >= 100_000]
    rss_spread = (max(rss) - rss[0]) / rss[0] if rss else None
    rows = [
        ("one worker, 1 M replay", one["readings_per_s"], ">= 15000 readings/s",
         one["readings_per_s"] >= 15_000,
         f"{one['readings_per_s'] / consume:.2%} of raw consume"),
        ("two workers / one (the same 24-h replay)",
         round(two["readings_per_s"] / _one_same(p), 2), ">= 1.8",
         two["readings_per_s"] >= 1.8 * _one_same(p), _cores_bound(p)),
        ("received → violation p99, nominal", p["latency_nominal"]["violation_latency_s"]["p99"],
         "< 1 s", _lt(p["latency_nominal"]["violation_latency_s"]["p99"], 1.0), ""),
        ("received → violation p99, 100×", p["latency_100x"]["violation_latency_s"]["p99"],
         "< 2 s", _lt(p["latency_100x"]["violation_latency_s"]["p99"], 2.0), ""),
        ("writer / raw binary COPY", lim["writer"]["ratio_to_copy"], ">= 0.7",
         lim["writer"]["ratio_to_copy"] >= 0.7, ""),
        ("province year (50 M) with 2 workers, hours",
         round(PROVINCE_YEAR_READINGS / two["readings_per_s"] / 3600, 2), "< 1 h",
         PROVINCE_YEAR_READINGS / two["readings_per_s"] < 3600, "at the 2-worker rate"),
        ("worker RSS 100 k → 1 M, spread", None if rss_spread is None else round(rss_spread, 3),
         "within ±10 %", rss_spread is not None and abs(rss_spread) <= 0.10,
         "production late horizon"),
    ]  # fmt: skip
    return [
        {"target": t, "measured": m, "goal": g, "met": bool(ok), "note": n}
        for t, m, g, ok, n in rows
    ]


def _one_same(p: dict[str, Any]) -> float:
    """One worker's rate on the two workers' replay (older reports: the long replay's first
    chunk, other hours of the same length)."""
    same = p.get("one_worker_same_replay") or p["one_worker"]["first_chunk"]
    return float(same["readings_per_s"])


def _cores_bound(p: dict[str, Any]) -> str:
    """What the machine's cores allow two workers, at what a reading cost in their run."""
    cpu, one = p["two_workers"].get("cpu"), _one_same(p)
    if not cpu:
        return ""
    bound = cpu["cores_bound_readings_per_s"] / one
    return (
        f"the {cpu['cores']} cores allow ≤ {bound:.2f} × at {cpu['total_us']:.0f} µs of CPU a "
        f"reading (workers {cpu['workers_us']:.0f}, broker {cpu['broker_us']:.0f}, "
        f"database {cpu['database_us']:.0f})"
    )


def _lt(x: float | None, bound: float) -> bool:
    return x is not None and x < bound


def table(report: dict[str, Any]) -> str:
    m, lim, p = report["machine"], report["limits"], report["pipeline"]
    one, two = p["one_worker"], p["two_workers"]
    consume = lim["consume"]["readings_per_s"]
    rows: list[tuple[str, str, str]] = [
        ("machine", f"{m['nproc']} × {m['cpu']}, {m['ram_gib']} GiB RAM", report["date"]),
        (
            "message size",
            f"{lim['mean_message_bytes']} B JSON RawBatch",
            f"{lim['readings_per_message']} readings per message (one per source and time)",
        ),
        (
            "limit: produce (aiokafka batch)",
            f"{_f(lim['produce']['readings_per_s'])} readings/s",
            f"{_f(lim['produce']['per_s'])} msg/s; {lim['readings']:,} readings",
        ),
        (
            "limit: consume (aiokafka)",
            f"{_f(consume)} readings/s",
            f"{_f(lim['consume']['per_s'])} msg/s",
        ),
        (
            "limit: COPY into readings",
            f"{_f(lim['copy']['per_s'])} rows/s",
            f"binary, one transaction; text: {_f(lim.get('copy_text', {}).get('per_s'))} rows/s",
        ),
        (
            "writer: binary COPY (merge on a replay)",
            f"{_f(lim['writer']['per_s'])} rows/s",
            f"{lim['writer']['ratio_to_copy']:.2f} × raw binary COPY "
            f"({_f(lim['writer'].get('ratio_to_text_copy'), 2)} × text), same rows, "
            "5,000-row batches",
        ),
    ]
    for label, t in (("1 worker", one), ("2 workers", two)):
        rest = t.get("rest")  # the 1 M replay after its first chunk, queued while it was stopped
        how = (
            f"{rest['readings']:,} queued readings in {rest['seconds']} s; "
            if rest
            else f"{t['readings_sent']:,} in {t['seconds_to_readings']} s; "
        )
        rows.append(
            (
                f"pipeline {label}: raw → stored",
                f"{_f(t['readings_per_s'])} readings/s",
                f"{t['readings_per_s'] / consume:.2%} of consume; {how}"
                f"{t['readings_stored']:,}/{t['readings_sent']:,} stored",
            )
        )
        rows.append(
            (
                f"pipeline {label}: averages, events",
                f"{t['averages_stored']:,} averages, {t['violation_events_stored']:,} events",
                f"settled after {t['seconds_to_all']} s; events: "
                + ", ".join(f"{k} {v}" for k, v in t["violation_events_by_kind"].items()),
            )
        )
    for label, key in (("nominal", "latency_nominal"), ("100×", "latency_100x")):
        lat = p[key]
        r, v = lat["reading_latency_s"], lat["violation_latency_s"]
        rows.append(
            (
                f"latency {label}: received → stored",
                f"p50 {_f(r['p50'], 2)} p95 {_f(r['p95'], 2)} p99 {_f(r['p99'], 2)} s",
                f"n={r['n']}, {lat['offered_per_s']}/s offered",
            )
        )
        rows.append(
            (
                f"latency {label}: received → violation",
                f"p50 {_f(v['p50'], 2)} p95 {_f(v['p95'], 2)} p99 {_f(v['p99'], 2)} s",
                f"n={v['n']} probes (early-warning event)",
            )
        )
    first = one["first_chunk"]
    rows.append(
        (
            "pipeline 1 worker: first chunk alone",
            f"{_f(first['readings_per_s'])} readings/s",
            f"{first['readings']:,} readings (its first 6 h of data) in {first['seconds']} s",
        )
    )
    same = p.get("one_worker_same_replay")
    if same:
        rows.append(
            (
                "pipeline 1 worker: the 2 workers' replay",
                f"{_f(same['readings_per_s'])} readings/s",
                f"{same['readings_sent']:,} in {same['seconds_to_readings']} s: "
                f"2 workers {two['readings_per_s'] / same['readings_per_s']:.2f} ×",
            )
        )
    for label, run in (
        ("1 worker, first chunk", first),
        ("1 worker, rest of the replay", one["rest"]),
        ("1 worker, the 2 workers' replay", same or {}),
        ("2 workers", two),
    ):
        cpu = run.get("cpu")
        if cpu:
            rows.append(
                (
                    f"CPU a reading: {label}",
                    f"{cpu['total_us']:.0f} µs",
                    f"workers {cpu['workers_us']:.0f}, broker {cpu['broker_us']:.0f}, database "
                    f"{cpu['database_us']:.0f}; {cpu['cores_busy']} of {cpu['cores']} cores busy, "
                    f"bound {_f(cpu['cores_bound_readings_per_s'])} readings/s",
                )
            )
    y = report["replay_year"]
    rows.append(
        (
            "replay: 1 year, registry cadence",
            f"{y['registry_year_hours']} h",
            f"{y['registry_year_readings']:,} readings at {_f(one['readings_per_s'])}/s",
        )
    )
    rows.append(
        (
            "replay: 1 year, issue's 480×5 min",
            f"{y['issue_year_hours']} h",
            f"{y['issue_year_readings']:,} readings",
        )
    )
    mem = p["memory"]
    rows.append(
        (
            "memory: worker RSS",
            f"{mem['rss_start_mib']} → {mem['rss_after_replay_mib']} MiB",
            f"start → {mem['readings_after_replay']:,} readings; every 100 k: "
            + ", ".join(f"{mib:.0f}" for _, mib in mem["rss_by_readings"][1:-1]),
        )
    )
    ex = report.get("export")
    if ex:
        for r in ex["results"]:
            rows.append(
                (
                    f"export {r['format']} {r['period']}",
                    f"{r['seconds']:.1f} s",
                    f"peak traced {r['traced_peak_kib'] / 1024:.1f} MiB",
                )
            )
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{'what':{w0}}  {'result':{w1}}  note", "-" * (w0 + w1 + 40)]
    lines += [f"{a:{w0}}  {b:{w1}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replay-hours", type=float, default=24.0)
    p.add_argument("--latency-seconds", type=float, default=60.0)
    p.add_argument("--fast-seconds", type=float, default=30.0)
    p.add_argument("--limit-readings", type=int, default=200_000)
    p.add_argument("--export-days", type=int, default=90, help="0 skips the export benchmark")
    p.add_argument("--replay-readings", type=int, default=1_000_000, help="one worker's replay")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness only")
    args = p.parse_args(argv)
    if args.quick:
        args.replay_hours, args.latency_seconds, args.fast_seconds = 0.5, 10.0, 5.0
        args.replay_readings = 30_000
        args.limit_readings, args.export_days = 20_000, 0
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    m = report["machine"]
    print(f"quantrac bench {report['date']} on {m['nproc']} × {m['cpu']}, {m['ram_gib']} GiB RAM")
    plan = Plan(
        replay_readings=args.replay_readings,
        replay_hours=args.replay_hours,
        latency_seconds=args.latency_seconds,
        fast_seconds=args.fast_seconds,
        probes_nominal=10 if args.quick else 20,
        probes_fast=10 if args.quick else 40,
    )
    with tempfile.TemporaryDirectory(prefix="quantrac-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with (
            EmbeddedBroker(log_path=tmp / "tansu.log") as broker,
            EmbeddedPostgres(tmp / "pg") as pg,
        ):
            print("limits …", flush=True)
            report["limits"] = run_limits(
                broker.bootstrap,
                fresh_database(pg.uri, "limits", stamps=False),
                args.limit_readings,
            )
            print(f"  {report['limits']}", flush=True)
            report["pipeline"] = run_pipeline(
                broker.url,
                pg.uri,
                tmp,
                plan,
                {"broker": broker.pid, "database": pg.pid},
                say=lambda s: print(s, flush=True),
            )
    one = report["pipeline"]["one_worker"]
    report["replay_year"] = year_extrapolation(
        one["readings_per_s"], report["pipeline"]["nominal_readings_per_s"]
    )
    if args.export_days:
        print(f"export benchmark ({args.export_days} days) …", flush=True)
        code = bench_export.main(["--days", str(args.export_days)])
        report["export"] = json.loads((RESULTS / "export.json").read_text())
        report["export"]["exit_code"] = code
    report["total_seconds"] = round(time.monotonic() - started, 1)
    report["targets"] = targets(report)
    print()
    print(table(report))
    print()
    for t in report["targets"]:
        verdict = "met" if t["met"] else "NOT met"
        print(f"target {t['target']}: {t['measured']} (goal {t['goal']}) {verdict} {t['note']}")
    print(f"total {report['total_seconds']} s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-{report['date'][:10]}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

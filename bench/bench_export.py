"""Benchmark: export a year of one source's 1-minute data, and show memory stays flat.

Inserts 525,600 readings (HD-NT-01 COD, one per minute of 2026) with COPY into a scratch database —
an embedded PostgreSQL under a temporary directory, or a new database on the server named by
``QUANTRAC_DATABASE_URL`` (dropped afterwards) — then exports half a year and the whole year,
each in a fresh subprocess that reports wall time, peak traced Python memory (tracemalloc) and
peak RSS. The export streams (server-side cursor, rows written as they arrive), so the peak must
stay within 20 % when the period doubles. Prints a table and writes bench/results/export.json.

    python -m bench.bench_export [--formats csv,xlsx] [--days N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "export.json"
SOURCE, PARAMETER, UNIT = "HD-NT-01", "COD", "mg/L"
YEAR_START = datetime(2025, 12, 31, 17, 0, tzinfo=UTC)  # 2026-01-01 00:00 local (UTC+7)
FLAT_TOLERANCE = 0.20


def rows(n: int) -> Iterator[tuple[Any, ...]]:
    step = timedelta(minutes=1)
    for i in range(n):
        at = YEAR_START + i * step
        v = 80.0 + (i * 7919 % 1000) / 50.0
        flag, status = ("calibrating", "01") if i % 1440 < 10 else ("valid", "00")
        yield (SOURCE, PARAMETER, at, v, UNIT, status, flag, v, UNIT, at, "ftp", f"f{i // 60}.txt")


def load(url: str, n: int) -> float:
    from storage.migrate import migrate

    migrate(url)
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY readings (source_id, parameter, measured_at, value, unit, status, flag,"
            " raw_value, raw_unit, received_at, channel, origin) FROM STDIN"
        ) as copy:
            for r in rows(n):
                copy.write_row(r)
        cur.execute("ANALYZE readings")
    return time.perf_counter() - t0


def child(url: str, period: str, fmt: str, out: str) -> None:
    """Run one export in this (fresh) process and print its measurements as JSON."""
    from core.settings import Settings
    from reports.common import ReportContext
    from reports.i18n import Lang
    from reports.model import ReportKind
    from reports.service import Format, ReportRequest, connect, write_report

    settings = Settings(database_url=url)
    ctx = ReportContext.from_settings(settings, Lang.EN)
    req = ReportRequest(ReportKind.EXPORT, Format(fmt), Lang.EN, period, (SOURCE,))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    with connect(url) as conn, open(out, "wb") as f:
        write_report(conn, ctx, req, f)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "traced_peak_kib": peak / 1024,
                "rss_before_kib": rss0,
                "rss_peak_kib": rss,
                "bytes": os.path.getsize(out),
            }
        )
    )


def measure(url: str, period: str, fmt: str, tmp: Path) -> dict[str, Any]:
    out = tmp / f"export_{period.replace('.', '_')}.{fmt}"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_export", "--child", url, period, fmt, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    out.unlink(missing_ok=True)
    return {"period": period, "format": fmt, **result}


def run(url: str, formats: list[str], days: int, tmp: Path) -> dict[str, Any]:
    n = days * 1440
    load_s = load(url, n)
    half = YEAR_START + timedelta(days=days // 2)
    full = YEAR_START + timedelta(days=days)
    local = timedelta(hours=7)
    p_half = f"2026-01-01..{(half + local - timedelta(days=1)).date().isoformat()}"
    p_full = f"2026-01-01..{(full + local - timedelta(days=1)).date().isoformat()}"
    results = []
    for fmt in formats:
        for period in (p_half, p_full):
            results.append(measure(url, period, fmt, tmp))
    checks = []
    for fmt in formats:
        a, b = (r for r in results if r["format"] == fmt)
        growth = b["traced_peak_kib"] / a["traced_peak_kib"] - 1.0
        checks.append(
            {"format": fmt, "traced_peak_growth": growth, "flat": growth <= FLAT_TOLERANCE}
        )
    return {
        "rows": n,
        "load_seconds": load_s,
        "results": results,
        "checks": checks,
        "tolerance": FLAT_TOLERANCE,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"rows loaded: {report['rows']:,} in {report['load_seconds']:.1f} s (COPY)")
    head = (
        f"{'format':6} {'period':24} {'rows/s':>10} {'seconds*':>8} {'traced MiB':>11} "
        f"{'RSS MiB':>8} {'file MiB':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in report["results"]:
        days = _days(r["period"])
        n = days * 1440
        print(
            f"{r['format']:6} {r['period']:24} {n / r['seconds']:>10,.0f} {r['seconds']:>8.1f} "
            f"{r['traced_peak_kib'] / 1024:>11.2f} {r['rss_peak_kib'] / 1024:>8.1f} "
            f"{r['bytes'] / 2**20:>9.1f}"
        )
    print("* wall time with tracemalloc running (a plain export is faster)")
    for c in report["checks"]:
        verdict = "FLAT" if c["flat"] else "NOT FLAT"
        print(
            f"{c['format']}: peak traced memory grows {c['traced_peak_growth']:+.1%} when the "
            f"period doubles (limit +{report['tolerance']:.0%}): {verdict}"
        )


def _days(period: str) -> int:
    a, b = period.split("..")
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).days + 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--child", nargs=4, metavar=("URL", "PERIOD", "FORMAT", "OUT"), help=argparse.SUPPRESS
    )
    p.add_argument("--formats", default="csv", help="comma-separated: csv,xlsx")
    p.add_argument("--days", type=int, default=365, help="days of 1-minute data (default 365)")
    args = p.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    with tempfile.TemporaryDirectory(prefix="quantrac-bench-") as tmpdir:
        tmp = Path(tmpdir)
        external = os.environ.get("QUANTRAC_DATABASE_URL")
        if external:
            name = f"bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(external, autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {name}")
            info = psycopg.conninfo.conninfo_to_dict(external)
            info["dbname"] = name
            url = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
            try:
                report = run(url, formats, args.days, tmp)
            finally:
                with psycopg.connect(external, autocommit=True) as admin:
                    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        else:
            from streams.embedded import EmbeddedPostgres

            with EmbeddedPostgres(tmp / "pg") as pg:
                report = run(pg.uri, formats, args.days, tmp)
    print_table(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"written {RESULTS.relative_to(ROOT)}")
    return 0 if all(c["flat"] for c in report["checks"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())

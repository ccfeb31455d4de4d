"""``quantrac report KIND ...``: the command-line front end of the reports.

    quantrac report compliance --source HD-NT-01 --period 2026-10 --format pdf -o out.pdf
    quantrac report air-quality --source HD-KK-01 --period 2026-Q3 --format xlsx --lang en
    quantrac report province --period 2026-10 --format csv
    quantrac report export --source HD-NT-01,HD-NT-02 --period 2026-10-01..2026-10-15
    quantrac report evidence --violation 'HD-NT-01/COD/...' -o evidence.zip

The lead wires ``run_report`` into the main CLI; it returns the path written.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO

from core.progress import Progress
from core.settings import Settings
from reports.cli_args import add_kinds
from reports.common import ReportContext
from reports.i18n import Lang
from reports.model import ReportKind
from reports.periods import PeriodError
from reports.service import (
    Format,
    ReportRequest,
    ReportRequestError,
    check_request,
    connect,
    report_period,
    write_report,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quantrac report", description="Regulator reports.")
    add_kinds(p)
    return p


def request_from_args(args: argparse.Namespace) -> ReportRequest:
    kind = ReportKind(args.kind)
    default = Format.ZIP if kind is ReportKind.EVIDENCE else Format.CSV
    sources = tuple(i.strip() for s in args.source for i in s.split(",") if i.strip())
    return ReportRequest(
        kind=kind,
        fmt=Format(args.format) if args.format else default,
        lang=Lang(args.lang),
        period=args.period,
        sources=sources,
        violation=args.violation,
    )


def run_report(settings: Settings, argv: Sequence[str]) -> Path:
    """Parse ``argv`` (without the leading 'report'), write the report, return its path."""
    return run_parsed(settings, parser().parse_args(list(argv)))


def run_parsed(settings: Settings, args: argparse.Namespace) -> Path:
    """Write the report ``args`` (from :func:`add_kinds`) ask for; return its path. Progress
    (bytes written) goes to stderr on a terminal, one summary line at the end."""
    req = request_from_args(args)
    check_request(req)  # fail before starting a database
    ctx = ReportContext.from_settings(settings, req.lang)
    if req.kind is not ReportKind.EVIDENCE:
        try:
            report_period(ctx, req)  # the same check write_report makes, before the database
        except PeriodError as exc:
            raise ReportRequestError(str(exc)) from exc
    known = {s.id for s in ctx.registry.sources}
    unknown = [s for s in req.sources if s not in known and s.lower() != "all"]
    if unknown:  # before the database: a typo is the caller's, not a missing-data report
        raise ReportRequestError(
            f"unknown source id {unknown[0]!r} ({len(known)} sources registered;"
            " `quantrac stations` lists them)"
        )
    path: Path = args.output or Path(req.filename())
    with ExitStack() as stack:
        url = settings.database_url
        if not url:  # embedded only where allowed (streams/runtime.py), else exit 2
            from streams.embedded import EmbeddedPostgres
            from streams.runtime import require_urls

            require_urls(settings, ("database_url",))

            url = stack.enter_context(EmbeddedPostgres(settings.data_dir / "pg")).uri
        conn = stack.enter_context(connect(url))
        tmp = path.with_name(path.name + ".part")
        progress = Progress(f"report {req.kind}")
        with open(tmp, "wb") as raw:
            out = CountingWriter(raw, lambda n: progress.update(n // 1024, unit="kB"))
            write_report(conn, ctx, req, out, settings.data_dir / "archive")  # type: ignore[arg-type]
        tmp.replace(path)  # never leave a half-written report under the real name
        progress.finish(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")
    return path


class CountingWriter:
    """A binary file that counts what is written through it (progress of long exports)."""

    def __init__(self, raw: BinaryIO, on_write: Callable[[int], None]) -> None:
        self.raw, self.on_write, self.written = raw, on_write, 0

    def write(self, data: bytes) -> int:
        n = self.raw.write(data)
        self.written += n
        self.on_write(self.written)
        return n

    def __getattr__(self, name: str) -> Any:  # seek, tell, flush... as the file has them
        return getattr(self.raw, name)

"""The arguments of ``quantrac report KIND``: one sub-command per report kind, each with only
the options it takes and its own ``--help``.

Light on purpose (argparse and two enums): ``quantrac`` builds its whole parser at every start,
so ``quantrac --version`` must not import the renderers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reports.i18n import Lang
from reports.model import ReportKind

PERIOD_HELP = (
    "a local month 2026-10, quarter 2026-Q3, year 2026, day 2026-10-05 or range "
    "2026-10-01..2026-10-15 (Asia/Ho_Chi_Minh)"
)
KINDS: dict[ReportKind, tuple[str, str]] = {
    ReportKind.COMPLIANCE: (
        "one emission source's compliance: completeness, limits and their legal basis, "
        "exceedances, violations, acknowledgements, outages",
        "quantrac report compliance --source HD-NT-01 --period 2026-10 --format pdf -o out.pdf",
    ),
    ReportKind.AIR_QUALITY: (
        "one ambient station's quality: daily VN_AQI and QCVN 05:2023 (air), or class and "
        "VN_WQI (surface water)",
        "quantrac report air-quality --source HD-KK-01 --period 2026-Q3 --format xlsx --lang en",
    ),
    ReportKind.PROVINCE: (
        "the province summary: every source's completeness and violations",
        "quantrac report province --period 2026-10 --format csv",
    ),
    ReportKind.EXPORT: (
        "raw readings and averages of some sources (csv or xlsx)",
        "quantrac report export --source HD-NT-01,HD-NT-02 --period 2026-10-01..2026-10-15",
    ),
    ReportKind.EVIDENCE: (
        "a violation's evidence package (zip): readings, original files, events, checksums",
        "quantrac report evidence --violation 'HD-NT-01/COD/...' -o evidence.zip",
    ),
}
FORMATS = {
    ReportKind.COMPLIANCE: ("csv", "xlsx", "pdf"),
    ReportKind.AIR_QUALITY: ("csv", "xlsx", "pdf"),
    ReportKind.PROVINCE: ("csv", "xlsx", "pdf"),
    ReportKind.EXPORT: ("csv", "xlsx"),
    ReportKind.EVIDENCE: ("zip",),
}


def add_kinds(parser: argparse.ArgumentParser) -> None:
    """Add one sub-command per report kind to ``parser`` (dest ``kind``)."""
    sub = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, (summary, example) in KINDS.items():
        sp = sub.add_parser(
            kind.value,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}.",
            epilog=f"example: {example}",
        )
        sp.set_defaults(source=[], period=None, violation=None, format=None)
        if kind is ReportKind.EVIDENCE:
            sp.add_argument("--violation", required=True, help="the violation id")
        else:
            sp.add_argument("--period", required=True, help=PERIOD_HELP)
        if kind in (ReportKind.COMPLIANCE, ReportKind.AIR_QUALITY):
            sp.add_argument("--source", action="append", required=True, help="the source id")
        elif kind is ReportKind.EXPORT:
            sp.add_argument(
                "--source",
                action="append",
                required=True,
                help="source ids (repeat, or comma-separated; 'all' for every source)",
            )
        formats = FORMATS[kind]
        if len(formats) > 1:
            sp.add_argument("--format", choices=formats, default=None, help=f"default {formats[0]}")
        sp.add_argument("--lang", choices=[lang.value for lang in Lang], default=Lang.VI.value)
        sp.add_argument("-o", "--output", type=Path, help="output file (default: a name in cwd)")

"""Fuzz the Circular 10 file path as the gateway runs it: ``parse_file`` and ``judge_file``.

Input format: :mod:`tests.fuzz.common` (an optional ``N:name<TAB>account`` line, then the body).
Every input is parsed as an FTP upload, checked against the parser's contracts, then judged for
the sender and checked again (sender mismatch refused whole, attribution, bounded evidence).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["stations"]):
    from core.records import Channel
    from stations.circular10 import parse_file
    from stations.gateway import judge_file
    from tests.fuzz import common


def TestOneInput(data: bytes) -> None:
    case = common.split_input(data)
    parsed = parse_file(
        case.name, case.body, common.REGISTRY, received_at=common.NOW, channel=Channel.FTP
    )
    common.check_file(case.name, case.body, parsed, channel="ftp")
    judged = judge_file(
        case.name,
        case.body,
        common.REGISTRY,
        account=case.account,
        channel=Channel.FTP,
        received_at=common.NOW,
        future_tolerance_s=common.TOLERANCE_S,
    )
    claimed = common.identity_owner(case.name)
    common.check_judged(parsed, judged, case.body, account=case.account, claimed=claimed)
    common.check_storable(data, judged)  # what the gateway would publish


def main(argv: list[str] | None = None) -> None:
    atheris.Setup(list(sys.argv if argv is None else argv), TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""Fuzz the JSON form as the gateway runs it: ``parse_json`` and ``judge_json``.

Input format: :mod:`tests.fuzz.common` (an optional ``N:source_id<TAB>account`` line, then the
body). Each input is tried twice: the body itself as the JSON message (raw bytes: broken JSON,
nesting, encodings), and the body's lines turned into ``{"source_id", "readings": [...]}`` by
:func:`tests.fuzz.common.as_json_doc`, so the Circular 10 corpus seeds the item checks too.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["stations"]):
    from core.records import Channel
    from stations.circular10 import parse_json
    from stations.gateway import judge_json
    from tests.fuzz import common


def TestOneInput(data: bytes) -> None:
    case = common.split_input(data, default_name=common.OWNER)
    for body in (case.body, common.as_json_doc(case.name, case.body)):
        parsed = parse_json(body, common.REGISTRY, received_at=common.NOW, channel=Channel.HTTP)
        common.check_json(body, parsed, channel="http")
        judged = judge_json(
            body,
            common.REGISTRY,
            account=case.account,
            channel=Channel.HTTP,
            received_at=common.NOW,
            future_tolerance_s=common.TOLERANCE_S,
        )
        common.check_judged(parsed, judged, body, account=case.account, claimed=parsed.source_id)
        common.check_storable(data, judged)  # what the gateway would publish


def main(argv: list[str] | None = None) -> None:
    atheris.Setup(list(sys.argv if argv is None else argv), TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

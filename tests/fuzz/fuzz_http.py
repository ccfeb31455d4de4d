"""Fuzz the HTTP door without a network: the real aiohttp handlers of ``HttpIngest``
(``POST /ingest`` and ``POST /ingest/file/{name}``) on mocked requests, through the real
:class:`~stations.gateway.Ingest` (judge → archive → publish → count) with an in-memory archive
and a publisher that serialises every record the way the Kafka one does.

Input format: :mod:`tests.fuzz.common`, ``N:name<TAB>account<TAB>authorization<TAB>length``:
an empty ``name`` (or, without the header, a body starting with ``{``/``[``) posts to
``/ingest``, any other name to ``/ingest/file/<name>``; ``account`` authenticates with its right
password unless a non-empty ``authorization`` is the raw ``Authorization`` header (no account
and no authorization: no header); ``Content-Length`` is the body's length, or ``length`` when
given: digits are declared as they are (past ``MAX_FILE_BYTES``: the oversize path), anything
else sends no ``Content-Length`` (as a chunked body).

The first bytes of the body are also offered to ``basic_credentials`` as a header value (as they
are, and after ``Basic``): it must answer None or credentials that match the header.

Checked per request: the answer is one of 202/400/401/403/413 (never an exception or a 503),
401 exactly when the credentials do not check, and then nothing is published; otherwise every
published reading and rejection is filed under the authenticated account (no one can deliver
readings for another source), the answer's counts are what was published, every record
survives the JSON round trip to Kafka, and the archive path stays in the account's folder; a
body refused as another source's goes to the quarantine, and only an archived body's records
carry its path.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["stations"]):
    from core.errors import RejectReason
    from core.records import RawReading, Rejection
    from stations.accounts import Accounts
    from stations.archive import Archive, archive_folder, safe_name
    from stations.circular10 import MAX_FILE_BYTES
    from stations.gateway import Ingest, Publisher, fresh_metrics
    from stations.http_ingest import REALM, HttpIngest, basic_credentials
    from stations.ingest_limits import IngestLimits
    from tests.fuzz import common

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

PASSWORDS = {s.id: f"pw-{s.id}" for s in common.REGISTRY.sources}
ANSWERS = {202, 400, 403, 413}


class MemoryArchive(Archive):
    """The archive's layout (``<local date>/<source>/<safe name>``) without the disk."""

    def __init__(self) -> None:
        super().__init__(Path("archive"))
        self.paths: list[Path] = []

    def store(
        self, name: str, data: bytes, *, received_at: datetime, source_id: str | None
    ) -> Path:
        path = archive_folder(received_at, source_id) / safe_name(name)
        self.paths.append(path)
        return path


class Recorder(Publisher):
    """Publishes nowhere; serialises each record as the Kafka publisher does and reads it back."""

    def __init__(self) -> None:
        self.timeout_s = 30.0
        self.readings: list[RawReading] = []
        self.rejections: list[Rejection] = []

    async def publish(
        self,
        readings: Sequence[RawReading],
        rejections: Sequence[Rejection],
        *,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        for r in readings:
            back = RawReading.loads(r.dumps(serializer="json"), serializer="json")
            assert back.asdict() == r.asdict(), (back, r)
            self.readings.append(back)
        for j in rejections:
            back_j = Rejection.loads(j.dumps(serializer="json"), serializer="json")
            assert back_j.asdict() == j.asdict(), (back_j, j)
            self.rejections.append(back_j)
        for key, value in headers:
            assert isinstance(key, str) and isinstance(value, bytes)


class InlineExecutor(ThreadPoolExecutor):
    """Runs ``asyncio.to_thread`` work (the archive write) in place: a thread hand-off per input
    would cost more than the parse."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


LOOP = asyncio.new_event_loop()
LOOP.set_default_executor(InlineExecutor())
ARCHIVE = MemoryArchive()
QUARANTINE = MemoryArchive()
PUBLISHER = Recorder()
INGEST = Ingest(
    common.REGISTRY,
    ARCHIVE,
    PUBLISHER,
    fresh_metrics(),
    quarantine=QUARANTINE,
    future_tolerance_s=common.TOLERANCE_S,
    clock=lambda: common.NOW,
    loop=LOOP,
    # one account posts every input: the per-minute limit would answer 429 to the rest
    limits=replace(IngestLimits.defaults(), deliveries_per_minute=2**62),
)
HTTP = HttpIngest(INGEST, Accounts(PASSWORDS), INGEST.metrics, "127.0.0.1", 0)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class _Protocol:
    """Enough of a connection for a request that is read, never written to a socket."""

    _reading_paused = False
    max_field_size = max_line_length = 8190
    max_headers = 128
    peername = ("127.0.0.1", 40000)
    sockname = ("127.0.0.1", 8080)
    ssl_context = None
    transport: Any = None
    writer: Any = None

    def pause_reading(self, **_: Any) -> None:
        pass

    def resume_reading(self, **_: Any) -> None:
        pass


PROTOCOL = _Protocol()
# built once (aiohttp's make_mocked_request makes a dozen Mocks per call otherwise)
TRANSPORT = make_mocked_request("POST", "/").transport
WRITER = make_mocked_request("POST", "/").writer


def _request(path: str, body: bytes, headers: dict[str, str], match_info: dict[str, str]) -> Any:
    payload = StreamReader(PROTOCOL, 2**16, loop=LOOP)  # type: ignore[arg-type]
    payload.feed_data(body)
    payload.feed_eof()
    return make_mocked_request(
        "POST",
        path,
        headers=headers,
        match_info=match_info,
        payload=payload,
        app=HTTP.app,
        loop=LOOP,
        protocol=PROTOCOL,
        transport=TRANSPORT,
        writer=WRITER,
    )


async def _call(handler: Any, request: Any) -> tuple[int, dict[str, str], bytes]:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # the 401 is raised
        return exc.status, dict(exc.headers), (exc.text or "").encode()
    return response.status, dict(response.headers), bytes(response.body)


def check_credentials(header: str) -> tuple[str, str] | None:
    creds = basic_credentials(header)
    if creds is not None:
        scheme, _, token = header.partition(" ")
        assert scheme.lower() == "basic", header
        user, password = creds
        assert ":" not in user
        assert base64.b64decode(token.strip()).decode("utf-8") == f"{user}:{password}"
    return creds


def TestOneInput(data: bytes) -> None:
    case = common.split_input(data)
    text = case.body[:256].decode("utf-8", "replace")
    check_credentials(text)  # the body's bytes as a raw Authorization header, too
    check_credentials("Basic " + text)
    has_header = data.startswith(common.HEADER)
    json_route = case.name == "" if has_header else case.body.lstrip()[:1] in (b"{", b"[")
    headers: dict[str, str] = {}
    if case.extra and case.extra[0]:
        # aiohttp hands over header bytes as UTF-8 (surrogateescape); the mocked request can
        # only carry encodable text, so undecodable bytes become U+FFFD here
        headers["Authorization"] = case.extra[0].decode("utf-8", "replace")
    elif case.account is not None:
        headers["Authorization"] = _basic(case.account, PASSWORDS.get(case.account, "?"))
    declared: int | None = len(case.body)
    if len(case.extra) > 1:  # digits: that length declared; anything else: none (chunked)
        length = case.extra[1]
        declared = int(length) if length.isdigit() and len(length) < 19 else None
    if declared is not None:
        headers["Content-Length"] = str(declared)

    if json_route:
        request = _request("/ingest", case.body, headers, {})
        handler = HTTP.post_json
    else:
        request = _request("/ingest/file/x", case.body, headers, {"name": case.name})
        handler = HTTP.post_file
    PUBLISHER.readings.clear()
    PUBLISHER.rejections.clear()
    ARCHIVE.paths.clear()
    QUARANTINE.paths.clear()
    status, answer_headers, answer = LOOP.run_until_complete(_call(handler, request))

    auth = headers.get("Authorization")
    creds = check_credentials(auth) if auth is not None else None
    if creds is None or not HTTP.accounts.check(*creds):
        assert status == 401, (status, answer)
        assert answer_headers.get("WWW-Authenticate") == REALM
        assert not ARCHIVE.paths and not QUARANTINE.paths
        assert not PUBLISHER.readings and not PUBLISHER.rejections
        return
    account = creds[0]
    assert status in ANSWERS, (status, answer)
    receipt = json.loads(answer)
    published = PUBLISHER.readings, PUBLISHER.rejections
    assert receipt["accepted"] == len(published[0]), (receipt, published)
    assert receipt["rejected"] == len(published[1]) == len(receipt["rejections"]), receipt
    assert (status == 202) == (receipt["accepted"] > 0), (status, receipt)
    assert [r["reason"] for r in receipt["rejections"]] == [r.reason for r in published[1]]
    for reading in published[0]:
        assert reading.source_id == account, f"{account} delivered a reading of {reading}"
        common.check_reading(reading, source_id=account, channel="http", origin=reading.origin)
    for rejection in published[1]:
        assert rejection.source_id == account, (rejection, account)
        common.check_rejection(rejection, channel="http", origin=rejection.origin)
    if declared is not None and declared > MAX_FILE_BYTES:
        assert status == 413 and receipt["rejected"] == 1, (status, receipt)
        assert published[1][0].reason == RejectReason.FILE_TOO_LARGE
    (path,) = ARCHIVE.paths + QUARANTINE.paths
    refused = any(r.reason == RejectReason.SENDER_MISMATCH for r in published[1])
    assert bool(QUARANTINE.paths) == refused, (QUARANTINE.paths, published[1])
    stored = None if refused else path.as_posix()
    assert all(r.archive_path == stored for r in [*published[0], *published[1]]), stored
    assert not path.is_absolute() and ".." not in path.parts and len(path.parts) == 3, path
    assert path.parts[1] == account, (path, account)


def main(argv: list[str] | None = None) -> None:
    atheris.Setup(list(sys.argv if argv is None else argv), TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

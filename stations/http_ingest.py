"""The HTTP door (aiohttp, on the gateway's event loop); HTTPS when a certificate and key are set
(``QUANTRAC_TLS_CERT_FILE``/``QUANTRAC_TLS_KEY_FILE``), so the Basic credentials travel encrypted.

- ``POST /ingest`` — the JSON form (``circular10.parse_json``);
- ``POST /ingest/file/{name}`` — a Circular 10 file as the body, its file name in the path;
- ``GET /metrics`` (Prometheus text) and ``GET /healthz``.

Authentication is HTTP Basic with the source's ingest account (the FTP credentials), or an API
token of scope ``ingest`` (``Authorization: Bearer qt_…``, created with ``quantrac tokens create
NAME --scope ingest --sources ID…``): it posts as one of its sources, the only one or the one
named by ``?source=ID``. A token is checked against the database through a short cache
(storage/api_tokens.py, ``CachedTokens``); each use is counted. Answers, each sent only after
the broker acknowledged what was published:

=====  =====================================================================================
202    some readings accepted: ``{"accepted": n, "rejected": m, "rejections": [...]}``
400    nothing accepted: the same body, ``rejections`` lists each specific error
401    no or wrong credentials (``WWW-Authenticate: Basic``); an unknown, revoked or expired
       token (``WWW-Authenticate: Bearer``)
403    the body is for another source (dead-lettered as ``sender_mismatch``); a token of scope
       ``read``, or ``?source=`` not among the token's sources (nothing archived)
413    body over ``QUANTRAC_GATEWAY_MAX_BODY_BYTES`` (dead-lettered as ``file_too_large``)
429    the account (the source) is over ``QUANTRAC_GATEWAY_DELIVERIES_PER_MINUTE`` (counted as
       ``rate_limited``; nothing archived or published: send again after ``Retry-After``)
503    the broker did not acknowledge, or a token could not be checked (database down): send
       again (``Retry-After``)
=====  =====================================================================================
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.api_tokens import ApiToken, Scope, TokenStoreDown, Verdict, bearer
from core.errors import RejectReason
from core.metrics import Metrics
from core.records import Channel
from stations.accounts import Accounts
from stations.circular10 import EXCERPT_BYTES, MAX_FILE_BYTES
from stations.gateway import Delivery, Ingest, PublishError, Receipt

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
REALM = 'Basic realm="quantrac ingest", charset="UTF-8"'
BEARER_REALM = 'Bearer realm="quantrac ingest"'


class IngestTokens(Protocol):
    """The token table as the gateway sees it (storage.api_tokens.CachedTokens); ``find``
    raises TokenStoreDown when the table cannot be read."""

    async def find(self, secret: str) -> ApiToken | None: ...

    async def record(self, token_id: str, *, route: str, outcome: str, ip: str) -> None: ...


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``Basic base64(user:password)`` → (user, password); None when absent or malformed."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, a non-ASCII token
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def status_for(receipt: Receipt) -> int:
    """HTTP status of a judged body (pure)."""
    if receipt.accepted:
        return 202
    reasons = set(receipt.reasons)
    if RejectReason.SENDER_MISMATCH in reasons:
        return 403
    if RejectReason.FILE_TOO_LARGE in reasons:
        return 413
    return 400


def receipt_body(receipt: Receipt) -> dict[str, Any]:
    return {
        "source_id": receipt.source_id,
        "origin": receipt.origin,
        "accepted": receipt.accepted,
        "rejected": receipt.rejected,
        "rejections": [
            {"reason": r.reason, "line": r.line, "field": r.field, "message": r.message}
            for r in receipt.rejections
        ],
    }


class _Body:
    def __init__(self, data: bytes, size: int, complete: bool) -> None:
        self.data = data
        self.size = size
        self.complete = complete


async def read_bounded(request: web.Request, limit: int = MAX_FILE_BYTES) -> _Body:
    """Read at most ``limit`` bytes; past it keep only the head (memory stays bounded)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        head = await request.content.read(EXCERPT_BYTES)
        return _Body(head, declared, complete=False)
    buf = bytearray()
    while True:
        chunk = await request.content.read(CHUNK)
        if not chunk:
            return _Body(bytes(buf), len(buf), complete=True)
        buf += chunk
        if len(buf) > limit:
            return _Body(bytes(buf[:EXCERPT_BYTES]), len(buf), complete=False)


class HttpIngest:
    def __init__(
        self,
        ingest: Ingest,
        accounts: Accounts,
        metrics: Metrics,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,  # HTTPS (core.tls.server_context)
        tokens: IngestTokens | None = None,  # None: Bearer tokens are refused (401)
    ) -> None:
        self.ingest = ingest
        self.tokens = tokens
        self.ssl_context = ssl_context
        self.accounts = accounts
        self.metrics = metrics
        self.host = host
        self.port = port
        self.app = web.Application(client_max_size=MAX_FILE_BYTES)
        self.app.add_routes(
            [
                web.post("/ingest", self.post_json),
                web.post("/ingest/file/{name}", self.post_file),
                web.get("/metrics", self.get_metrics),
                web.get("/healthz", self.get_health),
            ]
        )
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _account(self, request: web.Request) -> str:
        creds = basic_credentials(request.headers.get("Authorization"))
        if creds is None or not self.accounts.check(*creds):
            raise web.HTTPUnauthorized(
                headers={"WWW-Authenticate": REALM},
                text='{"error": "credentials required (HTTP Basic, the ingest account)"}',
                content_type="application/json",
            )
        return creds[0]

    async def _token_account(self, request: web.Request, secret: str) -> tuple[str, str]:
        """(source, token id) for an ingest token allowed to post for that source."""

        def refuse(status: type[web.HTTPException], message: str) -> web.HTTPException:
            headers = {"WWW-Authenticate": BEARER_REALM} if status is web.HTTPUnauthorized else {}
            body = json.dumps({"error": message})
            return status(headers=headers, text=body, content_type="application/json")

        if self.tokens is None:
            raise refuse(web.HTTPUnauthorized, "API tokens are not enabled on this gateway")
        try:
            token = await self.tokens.find(secret)
        except TokenStoreDown:
            log.exception("HTTP ingest: API token not checked")
            raise web.HTTPServiceUnavailable(
                headers={"Retry-After": "30"},
                text='{"error": "the token cannot be checked now; send again"}',
                content_type="application/json",
            ) from None
        if token is None:
            raise refuse(web.HTTPUnauthorized, "unknown API token")
        route = request.match_info.route.resource
        path = route.canonical if route is not None else request.path
        ip = request.remote or "unknown"
        verdict = token.verdict(datetime.now(UTC))
        if verdict is not Verdict.OK:
            await self.tokens.record(token.id, route=path, outcome=verdict, ip=ip)
            raise refuse(web.HTTPUnauthorized, f"API token {token.id} is {verdict}")
        wanted = request.query.get("source")
        if wanted is None and len(token.sources) == 1:
            wanted = token.sources[0]
        problem = None
        if token.scope is not Scope.INGEST:
            problem = f"API token {token.id} has scope {token.scope}, not ingest"
        elif wanted is None:
            problem = f"name the source: ?source= one of {', '.join(token.sources)}"
        elif wanted not in token.sources:
            problem = f"API token {token.id} may not post for {wanted[:40]}"
        if problem is not None:
            await self.tokens.record(token.id, route=path, outcome="scope", ip=ip)
            raise refuse(web.HTTPForbidden, problem)
        assert wanted is not None
        await self.tokens.record(token.id, route=path, outcome=Verdict.OK, ip=ip)
        return wanted, token.id

    async def _admitted(self, request: web.Request) -> str:
        """The authenticated account (a source id), if it is within its deliveries per minute."""
        secret = bearer(request.headers.get("Authorization"))
        if secret is not None:
            account, _ = await self._token_account(request, secret)
        else:
            account = self._account(request)
        if not self.ingest.admit(Channel.HTTP, account):
            limit = self.ingest.limits.deliveries_per_minute
            raise web.HTTPTooManyRequests(
                headers={"Retry-After": "60"},
                text=f'{{"error": "{RejectReason.RATE_LIMITED}: over {limit} deliveries a '
                'minute; send again later"}',
                content_type="application/json",
            )
        return account

    # Parsing runs in a thread: a 1 MB body of bad lines takes seconds, and the event loop
    # meanwhile serves the other stations (and answers the MQTT and FTP doors' commits).

    async def post_json(self, request: web.Request) -> web.Response:
        account = await self._admitted(request)
        body = await read_bounded(request, self.ingest.limits.max_body_bytes)
        if not body.complete:
            return await self._oversize(account, "ingest.json", body)
        delivery = await asyncio.to_thread(
            self.ingest.receive_json, Channel.HTTP, account, body.data
        )
        return await self._commit(delivery)

    async def post_file(self, request: web.Request) -> web.Response:
        account = await self._admitted(request)
        name = request.match_info["name"]
        body = await read_bounded(request, self.ingest.limits.max_body_bytes)
        if not body.complete:
            return await self._oversize(account, name, body)
        delivery = await asyncio.to_thread(
            self.ingest.receive_file, Channel.HTTP, account, name, body.data
        )
        return await self._commit(delivery)

    async def _oversize(self, account: str, name: str, body: _Body) -> web.Response:
        delivery = self.ingest.receive_oversize(Channel.HTTP, account, name, body.data, body.size)
        return await self._commit(delivery)

    async def _commit(self, delivery: Delivery) -> web.Response:
        try:
            receipt = await self.ingest.commit(delivery)
        except (PublishError, OSError) as exc:
            log.error("HTTP %s %s: not published: %s", delivery.account, delivery.name, exc)
            return web.json_response(
                {"error": "not accepted (local error); send again"},
                status=503,
                headers={"Retry-After": "30"},
            )
        return web.json_response(receipt_body(receipt), status=status_for(receipt))

    async def get_metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def get_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "accounts": len(self.accounts)})

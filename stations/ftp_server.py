"""The FTP door: pyftpdlib, one account per source, write-only, answers after the broker's ack.

Each account (user name = source id) is confined to ``data_dir/ftp/<source id>/`` with the
permissions ``ew`` (change into its own folder, store files): no listing, reading, deleting or
renaming, so no station sees another's files. A file is processed when its data connection
closes cleanly, *before* the reply: ``226`` means archived and acknowledged by the broker;
``553``/``551`` mean refused (the reason is dead-lettered and in the reply); ``451`` means "send
again" (the broker did not acknowledge). The uploaded copy is then removed (the archive keeps it).

Names that hold a path (``../x``, ``a/b``, ``.htaccess``…) are refused before any byte is taken
(``553``, dead-lettered as PATH_TRAVERSAL). Uploads are cut at ``circular10.MAX_FILE_BYTES``
(``552``, FILE_TOO_LARGE with the first bytes as evidence): memory use stays one socket buffer.
Transfers are always binary, so the archive holds exactly the bytes the station sent.

FTPS (``QUANTRAC_GATEWAY_FTP_TLS``): ``explicit`` offers AUTH TLS on the same port (stations
without TLS still deliver); ``required`` answers ``550`` to a login before AUTH TLS and to a data
connection before PROT P, counted in ``quantrac_tls_refusals_total``.

pyftpdlib is synchronous: the server runs in its own thread with one thread per connection
(``ThreadedFTPServer``), and each connection hands its file to the asyncio publisher with
``asyncio.run_coroutine_threadsafe`` and waits for the acknowledgement.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Literal

from OpenSSL import SSL
from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer
from pyftpdlib.handlers import DTPHandler, FTPHandler, TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.servers import ThreadedFTPServer

from core.errors import FILE_LEVEL_REASONS, ParseError, RejectReason
from core.records import Channel
from core.tls import TlsConfigError
from stations.accounts import Accounts
from stations.circular10 import EXCERPT_BYTES, MAX_FILE_BYTES, parse_filename
from stations.gateway import Ingest, PublishError, Receipt

log = logging.getLogger(__name__)

PERMISSIONS = "ew"
MAX_NAME_BYTES = 255  # NAME_MAX of Linux file systems
# Refused before the transfer: these commands cannot carry a Circular 10 identity or a whole file.
UNSUPPORTED = {"APPE": "append", "STOU": "unique names", "REST": "resume"}


def upload_name(arg: str) -> str:
    """The file name a STOR argument asks for; one leading ``/`` (the account's root) is fine."""
    return arg[1:] if arg.startswith("/") and "/" not in arg[1:] else arg


def refuses_name(name: str) -> bool:
    """True when the name cannot become a file in the account's folder: it holds a path, or
    it is longer than a file name may be (the dead letter then says which)."""
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        return True
    try:
        parse_filename(name)
    except ParseError as exc:
        return exc.reason == RejectReason.PATH_TRAVERSAL
    return False


def reply_for(receipt: Receipt) -> str:
    """The FTP reply once the broker acknowledged (pure)."""
    if receipt.accepted:
        return (
            f"226 Transfer complete: {receipt.accepted} readings accepted, "
            f"{receipt.rejected} lines rejected."
        )
    first = receipt.rejections[0] if receipt.rejections else None
    reason = first.reason if first else "empty"
    message = (first.message if first else "nothing to accept").replace("\r", " ")
    message = message.replace("\n", " ")[:200]
    code = "553" if first and RejectReason(first.reason) in FILE_LEVEL_REASONS else "551"
    more = f" (+{receipt.rejected - 1} more)" if receipt.rejected > 1 else ""
    return f"{code} Rejected: {reason}: {message}{more}"


class _Authorizer(DummyAuthorizer):
    def __init__(self, accounts: Accounts, root: Path) -> None:
        super().__init__()
        self.accounts = accounts
        for source_id in accounts.ids():
            home = root / source_id
            home.mkdir(parents=True, exist_ok=True)
            self.add_user(source_id, "", str(home), perm=PERMISSIONS)

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        if not self.accounts.check(username, password):
            raise AuthenticationFailed("Authentication failed.")


class _DataChannel(DTPHandler):
    """Binary only, cut at the size limit, and no automatic ``226``."""

    _resp: tuple[Any, ...]  # (reply, log function) sent when the channel closes; () = none

    @property
    def max_bytes(self) -> int:
        return self.cmd_channel.ingest.limits.max_body_bytes

    def enable_receiving(self, type: str, cmd: str) -> None:
        super().enable_receiving("i", cmd)

    def handle_read(self) -> None:
        super().handle_read()
        if self.receive and not self._closed and self.tot_bytes_received > self.max_bytes:
            self.cmd_channel.oversize = self.tot_bytes_received
            self._resp = (
                f"552 File larger than {self.max_bytes} bytes; transfer aborted.",
                log.info,
            )
            self.transfer_finished = False
            self.close()

    handle_read_event = handle_read  # the base class aliases its own handle_read

    def handle_close(self) -> None:
        if not self._closed and self.receive:
            # A clean end of an upload: the command channel replies once the file is published.
            self.transfer_finished = True
            self._resp = ()
            self.close()
            return
        super().handle_close()


class _Handler(FTPHandler):
    """One connection. ``ingest`` is set on the per-server subclass."""

    ingest: Ingest
    dtp_handler = _DataChannel
    banner = "quantrac gateway: Circular 10/2021 uploads"
    max_login_attempts = 3
    permit_foreign_addresses = False
    use_sendfile = False
    oversize = 0

    def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
        if self.authenticated and cmd in UNSUPPORTED:
            self.respond(f"502 {UNSUPPORTED[cmd]} is not supported; STOR whole files.")
            return
        if (
            self.authenticated
            and cmd == "STOR"
            and not self.ingest.admit(Channel.FTP, self.username)
        ):
            limit = self.ingest.limits.deliveries_per_minute
            self.respond(
                f"450 {RejectReason.RATE_LIMITED}: over {limit} files a minute; send later."
            )
            return
        if self.authenticated and cmd == "STOR" and arg and refuses_name(upload_name(arg)):
            self._dead_letter_name(upload_name(arg))
            return
        super().pre_process_command(line, cmd, arg)

    def handle_max_cons_per_ip(self) -> None:
        reason = RejectReason.TOO_MANY_CONNECTIONS
        self.ingest.metrics.rejections.labels(Channel.FTP.value, reason.value).inc()
        log.warning(
            "FTP %s: refused, more than %d connections", self.remote_ip, self.server.max_cons_per_ip
        )
        super().handle_max_cons_per_ip()

    def _dead_letter_name(self, name: str) -> None:
        delivery = self.ingest.receive_file(Channel.FTP, self.username, name, b"")
        try:
            receipt = self.ingest.commit_blocking(delivery)
        except (PublishError, TimeoutError, OSError) as exc:
            log.error("FTP %s: refused name %r not dead-lettered: %s", self.username, name, exc)
            self.respond("451 Name refused; the gateway could not record it.")
            return
        self.respond(reply_for(receipt))

    def on_file_received(self, file: str) -> None:
        path = Path(file)
        try:
            with open(path, "rb") as f:  # bounded: larger uploads were cut at max_bytes
                data = f.read(MAX_FILE_BYTES + 1)
            delivery = self.ingest.receive_file(Channel.FTP, self.username, path.name, data)
            receipt = self.ingest.commit_blocking(delivery)
        except (PublishError, TimeoutError, OSError) as exc:
            log.error("FTP %s %s: not published, sender must resend: %s", self.username, file, exc)
            self.respond("451 Not accepted (local error); send the file again.")
        else:
            self.respond(reply_for(receipt))
        finally:
            path.unlink(missing_ok=True)

    def on_incomplete_file_received(self, file: str) -> None:
        path = Path(file)
        try:
            if self.oversize:
                with open(path, "rb") as f:
                    head = f.read(EXCERPT_BYTES)
                delivery = self.ingest.receive_oversize(
                    Channel.FTP, self.username, path.name, head, self.oversize
                )
                self.ingest.commit_blocking(delivery)
            else:
                log.warning(
                    "FTP %s: upload of %s aborted by the client; not processed (it resends)",
                    self.username,
                    path.name,
                )
        except (PublishError, TimeoutError, OSError) as exc:
            log.error("FTP %s %s: oversize upload not dead-lettered: %s", self.username, file, exc)
        finally:
            self.oversize = 0
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# FTPS (explicit: AUTH TLS on the same port). pyftpdlib's TLS classes wrap the ones above.

FtpTls = Literal["off", "explicit", "required"]


class _TlsDataChannel(TLS_DTPHandler, _DataChannel):
    """The bounded binary channel, encrypted once the client sent ``PROT P``."""

    def handle_failed_ssl_handshake(self) -> None:
        self.cmd_channel.count_tls_refusal("handshake_failed", "data channel")
        super().handle_failed_ssl_handshake()


class _TlsHandler(TLS_FTPHandler, _Handler):
    """A connection that may (``explicit``) or must (``required``) switch to TLS before login.

    pyftpdlib answers ``550`` to USER before AUTH TLS, and to PASV/PORT before PROT P, when
    ``tls_control_required``/``tls_data_required``; this class counts those refusals.
    """

    dtp_handler = _TlsDataChannel

    def count_tls_refusal(self, reason: str, what: str) -> None:
        self.ingest.metrics.tls_refusals.labels(Channel.FTP.value, reason).inc()
        log.info("FTP %s:%s: refused, %s (%s)", self.remote_ip, self.remote_port, reason, what)

    def process_command(self, cmd: str, *args: Any, **kwargs: Any) -> None:
        # the conditions under which TLS_FTPHandler.process_command refuses (USER only: one
        # refused login counts once)
        if cmd == "USER" and self.tls_control_required and not self._ssl_established:
            self.count_tls_refusal("plain_login", f"USER {args[0] if args else ''}")
        elif cmd in {"PASV", "EPSV", "PORT", "EPRT"} and self.tls_data_required and not self._prot:
            self.count_tls_refusal("plain_data", f"{cmd} by {self.username or '?'}")
        super().process_command(cmd, *args, **kwargs)

    def handle_failed_ssl_handshake(self) -> None:
        self.count_tls_refusal("handshake_failed", "control channel")
        super().handle_failed_ssl_handshake()

    def on_login(self, username: str) -> None:
        if not self._ssl_established:  # explicit mode: who still has to move to FTPS
            log.info("FTP %s logged in without TLS from %s", username, self.remote_ip)
        super().on_login(username)


def ftps_context(cert: Path, key: Path) -> SSL.Context:
    """The pyOpenSSL server context pyftpdlib needs: TLS 1.2 or later, no compression."""
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(SSL.OP_NO_COMPRESSION)
    try:
        ctx.use_certificate_chain_file(str(cert))
        ctx.use_privatekey_file(str(key))
        ctx.check_privatekey()
    except SSL.Error as exc:
        raise TlsConfigError(f"{cert} / {key}: not a usable certificate and key: {exc}") from exc
    return ctx


class _Server(ThreadedFTPServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # pyftpdlib keeps these on the class: give each server its own
        self._lock = threading.Lock()
        self._exit = threading.Event()
        super().__init__(*args, **kwargs)


class FtpIngest:
    """The FTP server thread; ``start()`` binds (``port`` 0 = a free one), ``stop()`` joins."""

    def __init__(
        self,
        ingest: Ingest,
        accounts: Accounts,
        root: Path,
        *,
        host: str,
        port: int,
        passive_ports: str | None = None,
        masquerade_address: str | None = None,
        tls: FtpTls = "off",
        cert_and_key: tuple[Path, Path] | None = None,
    ) -> None:
        attrs: dict[str, Any] = {"ingest": ingest, "authorizer": _Authorizer(accounts, root)}
        base: type[_Handler] = _Handler
        if tls != "off":
            if cert_and_key is None:
                raise TlsConfigError(f"FTPS {tls} needs a certificate and a key")
            base = _TlsHandler
            required = tls == "required"
            attrs |= {
                "ssl_context": ftps_context(*cert_and_key),
                "tls_control_required": required,
                "tls_data_required": required,
            }
        handler: type[_Handler] = type("GatewayFtpHandler", (base,), attrs)
        if passive_ports:
            lo, _, hi = passive_ports.partition("-")
            handler.passive_ports = range(int(lo), int(hi or lo) + 1)
        if masquerade_address:
            handler.masquerade_address = masquerade_address
        self._server = _Server((host, port), handler)
        self._server.max_cons_per_ip = ingest.limits.ftp_max_cons_per_ip
        self.host, self.port = self._server.address[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ftp-gateway", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                self._server.serve_forever(timeout=0.2, blocking=False, handle_exit=False)
        finally:
            self._server.close_all()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)
        elif not self._thread.ident:  # never started
            self._server.close_all()

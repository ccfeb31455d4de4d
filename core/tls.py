"""TLS contexts from the one certificate and key in the settings (``tls_cert_file``/``key``).

Servers (the console through uvicorn, the gateway's HTTP ingest, FTPS in
``stations.ftp_server``) load the files once at start-up: issuing and rotating the certificate
is the operator's, and a restart picks up a new one (deploy/README.md). TLS 1.2 is the floor.
A missing or unreadable file stops the process with :class:`TlsConfigError` naming it.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from core.settings import Settings


class TlsConfigError(ValueError):
    """The certificate or key cannot be used; the message names the file and the cause."""


def cert_and_key(settings: Settings) -> tuple[Path, Path] | None:
    """The configured pair, checked readable; None when TLS is off."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None or key is None:  # the settings refuse one without the other
        return None
    for label, path in (("QUANTRAC_TLS_CERT_FILE", cert), ("QUANTRAC_TLS_KEY_FILE", key)):
        if not path.is_file():
            raise TlsConfigError(f"{label}={path}: no such file")
    return cert, key


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """A server context (aiohttp) for the configured pair; None when TLS is off."""
    pair = cert_and_key(settings)
    if pair is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(*pair)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(
            f"{pair[0]} / {pair[1]}: not a usable certificate and key: {exc}"
        ) from exc
    return ctx


def client_context(settings: Settings) -> ssl.SSLContext:
    """A verifying client context (the simulator's FTPS): the system's trusted CAs, plus the
    configured certificate itself, so a self-signed one (demo, tests) verifies too."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.tls_cert_file is not None:
        try:
            ctx.load_verify_locations(cafile=settings.tls_cert_file)
        except (ssl.SSLError, OSError) as exc:
            raise TlsConfigError(
                f"{settings.tls_cert_file}: not a usable certificate: {exc}"
            ) from exc
    return ctx

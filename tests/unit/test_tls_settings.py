"""TLS settings are refused whole when incomplete, and unusable files are named at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings
from core.tls import TlsConfigError, cert_and_key, client_context, server_context
from stations.ftp_server import ftps_context


def test_tls_is_off_by_default() -> None:
    settings = Settings()
    assert (settings.tls_on, settings.gateway_ftp_tls) == (False, "off")
    assert server_context(settings) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"tls_cert_file": "c.pem"},
            "QUANTRAC_TLS_CERT_FILE and QUANTRAC_TLS_KEY_FILE go together",
        ),
        ({"tls_key_file": "k.pem"}, "QUANTRAC_TLS_CERT_FILE and QUANTRAC_TLS_KEY_FILE go together"),
        ({"gateway_ftp_tls": "required"}, "QUANTRAC_GATEWAY_FTP_TLS=required needs"),
        ({"gateway_ftp_tls": "implicit"}, "'off', 'explicit' or 'required'"),
    ],
)
def test_incomplete_or_unknown_tls_settings_are_refused(
    fields: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**fields)  # type: ignore[arg-type]


def test_missing_and_unusable_files_are_named(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    settings = Settings(tls_cert_file=cert, tls_key_file=key)
    with pytest.raises(TlsConfigError, match=f"QUANTRAC_TLS_CERT_FILE={cert}: no such file"):
        cert_and_key(settings)
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(TlsConfigError, match=f"QUANTRAC_TLS_KEY_FILE={key}: no such file"):
        server_context(settings)
    key.write_text("not a key")
    with pytest.raises(TlsConfigError, match="not a usable certificate and key"):
        server_context(settings)
    with pytest.raises(TlsConfigError, match=f"{cert} / {key}: not a usable certificate and key"):
        ftps_context(cert, key)
    with pytest.raises(TlsConfigError, match="not a usable certificate"):
        client_context(settings)

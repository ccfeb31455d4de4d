"""API tokens for machine clients: the token format, scopes and the rule that refuses one.

A token reads ``qt_<id>_<secret>``: ``id`` (8 lowercase letters/digits) is public and finds the
row; ``secret`` is 32 random bytes (base64url, 43 characters). Only the SHA-256 of the whole
string is stored. A slow password hash (argon2) protects low-entropy secrets from a dictionary;
a 256-bit random secret has no dictionary to try, so one fast hash is as strong and costs
nothing per request.

Scopes: ``read`` (the open-data API) and ``ingest`` (the gateway's HTTP ingest, for the listed
sources only). A token is refused once ``expires_at`` has passed or an admin revoked it. The
table is storage's (storage/api_tokens.py); the console and the gateway both check tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

PREFIX = "qt_"
TOKEN = re.compile(r"^qt_(?P<id>[a-z0-9]{8})_(?P<secret>[A-Za-z0-9_-]{43})$")
NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,80}$")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
MAX_DAYS = 3650


class Scope(StrEnum):
    READ = "read"  # open-data API
    INGEST = "ingest"  # gateway HTTP ingest for the token's sources


class TokenStoreDown(RuntimeError):
    """The token table could not be read (database unreachable): the client may retry."""


class Verdict(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"  # malformed, no such id, or wrong secret
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ApiToken:
    id: str
    name: str
    scope: Scope
    sources: tuple[str, ...]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None

    def verdict(self, now: datetime) -> Verdict:
        if self.revoked_at is not None:
            return Verdict.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return Verdict.EXPIRED
        return Verdict.OK

    def public(self) -> dict[str, Any]:
        """The row as shown to admins (never the secret, never its hash)."""
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope.value,
            "sources": list(self.sources),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
            "last_used_at": self.last_used_at,
        }


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def parse_id(token: str) -> str | None:
    """The id of a well-formed token string, else None."""
    m = TOKEN.match(token)
    return m.group("id") if m else None


def bearer(header: str | None) -> str | None:
    """``Authorization: Bearer <token>`` → the token (None when absent or another scheme)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def mint() -> tuple[str, str]:
    """A new (id, token string)."""
    token_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    return token_id, f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def secret_matches(stored_digest: str | None, token: str) -> bool:
    """Constant-time comparison; the same work when there is no stored digest."""
    expected = stored_digest or digest("qt_dummy")
    return hmac.compare_digest(expected, digest(token)) and stored_digest is not None

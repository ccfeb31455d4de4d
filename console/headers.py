"""Security headers for every console response.

The console's own pages load their script and stylesheets from /static and carry no inline
script, inline style or style attribute, so the policy allows nothing but the console's origin:
an injected ``<script>`` or ``style=`` would not run, and no other site may frame the console
(clickjacking on the acknowledge and user buttons). FastAPI's /docs and /redoc pages are the one
exception: they load Swagger UI / ReDoc from a CDN with an inline bootstrap script, and show
nothing but the OpenAPI document, so they get a policy of their own (still unframeable).

HSTS is sent only over HTTPS: when the request came in over TLS, or when
``Settings.console_behind_tls`` says a reverse proxy terminates it in front of the console.
"""

from __future__ import annotations

from collections.abc import Mapping

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
DOCS_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
        "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
        "font-src 'self' https://fonts.gstatic.com",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
HSTS = "max-age=31536000; includeSubDomains"

COMMON: Mapping[str, str] = {
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP level 2
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # violation ids in URLs stay inside the console
    "Cross-Origin-Opener-Policy": "same-origin",
}


def security_headers(path: str, *, over_tls: bool) -> dict[str, str]:
    """The headers to set on the response to ``path``."""
    out = dict(COMMON)
    out["Content-Security-Policy"] = DOCS_CSP if path in DOCS_PATHS else CSP
    if over_tls:
        out["Strict-Transport-Security"] = HSTS
    return out

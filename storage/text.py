"""Text before the database: what PostgreSQL would refuse, or a reader could not see, made visible.

Anything can reach a text column: a file name sent over HTTP (``a%00b.txt``), a record produced
straight to a topic. PostgreSQL refuses NUL in ``text`` and ``jsonb`` and cannot encode a lone
surrogate (an undecodable byte kept by ``surrogateescape``); one such row failed its whole batch,
and the batch was delivered again forever. So every text field a row builder writes goes through
:func:`db_text`: control characters become visible escapes, lengths are bounded with a marker.
The exact bytes received stay in ``rejections.original`` (bytea), untouched.

Which characters: C0 controls (U+0000–U+001F), DEL and the C1 controls (U+007F–U+009F), and
surrogates (U+D800–U+DFFF) become ``\\xNN`` / ``\\uNNNN``. Tab and newline are kept only where a
field holds prose (``keep=PROSE``: rejection messages, legal bases, notes); identifiers, codes and
origins keep none, so a name shows on one line and cannot fake a second one. Backslashes are
not doubled: a stored value is for reading, and the evidence is the bytea.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

# Limits per kind of field, in characters (PostgreSQL's text has none; a bounded row keeps a
# hostile record from filling pages, indexes and console screens).
CODE = 200  # identifiers and codes: source, parameter, unit, channel, reason, rule, ids
ORIGIN = 1024  # a file name or a message's coordinates
PROSE_MAX = 8000  # messages, legal bases, sanction texts, notes

PROSE = "\t\n"  # what a prose field may keep

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def db_text(value: str, limit: int = CODE, keep: str = "") -> str:
    """``value`` as PostgreSQL will store it and a reader can see it: unsafe characters
    escaped (those in ``keep`` excepted), at most ``limit`` characters, a longer value cut
    with a marker that says how much was left off."""
    if not isinstance(value, str):
        value = str(value)
    if limit == CODE and len(value) <= CODE:  # codes and units: the same few, row after row
        return _db_text_cached(value, limit, keep)
    return _db_text(value, limit, keep)


# Codes only: origins and archive paths are new with every file and message, and once cached
# (any text up to 256 characters was) they filled the cache's 16,384 entries, a few MiB the
# worker's resident memory grew by over the first day of a replay (2026-12-07).


@functools.lru_cache(maxsize=16_384)
def _db_text_cached(value: str, limit: int, keep: str) -> str:
    return _db_text(value, limit, keep)


def _db_text(value: str, limit: int, keep: str) -> str:
    if _UNSAFE.search(value):
        value = _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(m), value)
    if len(value) > limit:
        marker = ""
        for _ in range(2):  # the marker's own length changes the count it shows, at most once
            kept = max(limit - len(marker), 0)
            marker = f"…[+{len(value) - kept} chars]"
        value = (value[:kept] + marker)[:limit]
    return value


def db_text_or_none(value: str | None, limit: int = CODE, keep: str = "") -> str | None:
    return None if value is None else db_text(value, limit, keep)


def db_json(value: Any) -> Any:
    """A JSON document jsonb accepts: every string (keys too) through :func:`db_text` (prose
    limits, newlines kept), non-finite numbers as null (JSON has none; the typed columns keep
    them)."""
    if isinstance(value, str):
        return db_text(value, PROSE_MAX, PROSE)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {db_text(str(k), CODE): db_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [db_json(v) for v in value]
    return value

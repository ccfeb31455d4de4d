"""Where accepted original files are forwarded: the destinations file, and the pure rules that
turn an archived file into what a receiver gets (name, path, idempotency key, retry delay).

The file (``QUANTRAC_FORWARD_DESTINATIONS_FILE``, YAML) lists destinations::

    destinations:
      - name: national              # [a-z0-9-], shown in metrics and on the console
        kind: ftp                   # ftp | ftps | http
        url: ftp://receiver.example.gov.vn:21/incoming
        username: haiduong
        password_env: FORWARD_NATIONAL_PASSWORD   # the secret stays in the environment
        sources: ["HD-*"]           # fnmatch patterns of source ids (default: every source)
        path: "{name}"              # remote path under the URL's folder (default: the file name)
        since: 2026-12-01           # first archive day forwarded (default: the day it starts)
      - name: city
        kind: http
        url: https://platform.example/api/quantrac/files
        token_env: FORWARD_CITY_TOKEN             # sent as "Authorization: Bearer"

Secrets are never read from the file itself, and never logged: a destination's ``repr`` hides
them. Path placeholders: ``{name}`` (the file name), ``{source}``, ``{date}`` (the archive's local
date, YYYY-MM-DD), ``{yyyy}``, ``{mm}``, ``{dd}``, and ``{province}``, ``{facility}``,
``{station}`` (the codes in a Circular 10/2021 file name). Only Circular 10 files are forwarded
unless ``files: all`` (the gateway also archives HTTP/MQTT JSON bodies).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from core.errors import ParseError
from stations.circular10 import parse_filename

Kind = Literal["ftp", "ftps", "http"]
KINDS: tuple[Kind, ...] = ("ftp", "ftps", "http")
PLACEHOLDERS = frozenset(
    {"name", "source", "date", "yyyy", "mm", "dd", "province", "facility", "station"}
)
CIRCULAR10_PLACEHOLDERS = frozenset({"province", "facility", "station"})
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
# Archive.store suffixes a different body arriving under a name already archived: name.1.txt
_DEDUP_SUFFIX = re.compile(r"^(?P<stem>[^.]+)\.[1-9][0-9]{0,2}(?P<ext>\.[A-Za-z]+)$")
_KEYS = frozenset(
    {
        "name",
        "kind",
        "url",
        "username",
        "password_env",
        "token_env",
        "sources",
        "path",
        "since",
        "files",
        "retry_min_s",
        "retry_max_s",
        "timeout_s",
        "max_refusals",
    }
)


class ForwardConfigError(ValueError):
    """The destinations file is unreadable or a destination is wrong; the message says where."""


@dataclass(frozen=True)
class Destination:
    name: str
    kind: Kind
    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    sources: tuple[str, ...] = ("*",)
    path: str = "{name}"
    since: date | None = None
    files: Literal["circular10", "all"] = "circular10"
    retry_min_s: float = 1.0
    retry_max_s: float = 300.0
    timeout_s: float = 30.0
    # A file the receiver refuses outright (FTP 5xx on it, HTTP 4xx) this many times is set
    # aside as 'failed' so it does not block its source's later files; `quantrac forward
    # retry` queues it again. Connection and login failures never count: they are retried.
    max_refusals: int = 5

    def wants(self, source_id: str, file_name: str) -> bool:
        """Is this archived file for this destination (its source, its kind of file)?"""
        if not any(fnmatch.fnmatchcase(source_id, p) for p in self.sources):
            return False
        return self.files == "all" or is_circular10(remote_name(file_name))


def is_circular10(name: str) -> bool:
    try:
        parse_filename(name)
    except ParseError:
        return False
    return True


def remote_name(archive_name: str) -> str:
    """The name the receiver gets: the archive's name without the ``.N`` the archive adds to a
    different body under a name already taken, so a Circular 10 name stays one (a corrected
    resend replaces the earlier file at the receiver, as it would have from the station)."""
    m = _DEDUP_SUFFIX.match(archive_name)
    if m:
        original = m["stem"] + m["ext"]
        if is_circular10(original):
            return original
    return archive_name


def remote_path(dest: Destination, archive_path: str) -> str:
    """``dest.path`` filled in for ``<date>/<source>/<name>`` (pure)."""
    day, source, name = archive_path.split("/")
    out_name = remote_name(name)
    values = {
        "name": out_name,
        "source": source,
        "date": day,
        "yyyy": day[0:4],
        "mm": day[5:7],
        "dd": day[8:10],
    }
    try:
        identity = parse_filename(out_name)
        values |= {
            "province": identity.province,
            "facility": identity.facility,
            "station": identity.station,
        }
    except ParseError:
        pass  # only a files: all destination gets these, and its path may not use the codes
    return dest.path.format_map(values).lstrip("/")


def idempotency_key(destination: str, archive_path: str, sha256: str) -> str:
    """One key per (destination, archived file, content): a resend after a crash repeats it."""
    digest = hashlib.sha256(f"{destination}\n{archive_path}\n{sha256}".encode()).hexdigest()
    return f"quantrac-{digest[:40]}"


def retry_delay(attempts: int, min_s: float, max_s: float) -> float:
    """Exponential backoff after ``attempts`` failed tries (1 → min_s, doubling, capped)."""
    if attempts <= 0:
        return 0.0
    return float(min(max_s, min_s * 2 ** min(attempts - 1, 30)))


# ---------------------------------------------------------------------------------------------
# loading


def load_destinations(path: Path, env: Mapping[str, str] | None = None) -> list[Destination]:
    """Read and check the destinations file; ForwardConfigError names the problem."""
    env = os.environ if env is None else env
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ForwardConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ForwardConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("destinations"), list):
        raise ForwardConfigError(f"{path}: want a mapping with a 'destinations' list")
    out: list[Destination] = []
    for i, entry in enumerate(doc["destinations"]):
        where = f"{path}: destinations[{i}]"
        if not isinstance(entry, dict):
            raise ForwardConfigError(f"{where}: want a mapping")
        if isinstance(entry.get("name"), str):
            where += f" ({entry['name']})"
        out.append(parse_destination(entry, env, where))
    names = [d.name for d in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ForwardConfigError(f"{path}: destination names used twice: {', '.join(dupes)}")
    return out


def parse_destination(entry: Mapping[str, Any], env: Mapping[str, str], where: str) -> Destination:
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ForwardConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})"
        )
    name = _text(entry, "name", where)
    if not _NAME.match(name):
        raise ForwardConfigError(f"{where}: name {name!r} must be 1-40 of a-z, 0-9, '-'")
    kind = _text(entry, "kind", where)
    if kind not in KINDS:
        raise ForwardConfigError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    url = _text(entry, "url", where)
    parts = urlsplit(url)
    schemes = ("http", "https") if kind == "http" else ("ftp", "ftps")
    if parts.scheme not in schemes or not parts.hostname:
        raise ForwardConfigError(
            f"{where}: url {url!r} must be {' or '.join(s + '://host…' for s in schemes)}"
        )
    if parts.username or parts.password:
        raise ForwardConfigError(
            f"{where}: put the account in username/password_env, not in the url"
        )
    password = _secret(entry, "password_env", env, where)
    token = _secret(entry, "token_env", env, where)
    if token is not None and kind != "http":
        raise ForwardConfigError(f"{where}: token_env is for kind http")
    username = entry.get("username")
    if username is not None and not isinstance(username, str):
        raise ForwardConfigError(f"{where}: username must be text")
    if kind != "http" and (username is None or password is None):
        raise ForwardConfigError(f"{where}: an FTP destination needs username and password_env")
    sources = entry.get("sources", ["*"])
    if (
        not isinstance(sources, list)
        or not sources
        or not all(isinstance(s, str) and s for s in sources)
    ):
        raise ForwardConfigError(f"{where}: sources must be a non-empty list of patterns")
    files = entry.get("files", "circular10")
    if files not in ("circular10", "all"):
        raise ForwardConfigError(f"{where}: files must be circular10 or all, not {files!r}")
    path_pattern = entry.get("path", "{name}")
    if not isinstance(path_pattern, str):
        raise ForwardConfigError(f"{where}: path must be text")
    used = _placeholders(path_pattern, where)
    if "name" not in used:
        raise ForwardConfigError(f"{where}: path {path_pattern!r} must contain {{name}}")
    if files == "all" and used & CIRCULAR10_PLACEHOLDERS:
        raise ForwardConfigError(
            f"{where}: {{province}}/{{facility}}/{{station}} need files: circular10 "
            "(other files have no such codes)"
        )
    if ".." in path_pattern.split("/"):
        raise ForwardConfigError(f"{where}: path must not hold '..'")
    since = entry.get("since")
    if since is not None and not isinstance(since, date):
        raise ForwardConfigError(f"{where}: since must be a date (YYYY-MM-DD), not {since!r}")
    numbers = {}
    for key, default, low in (
        ("retry_min_s", 1.0, 0.01),
        ("retry_max_s", 300.0, 0.01),
        ("timeout_s", 30.0, 0.1),
        ("max_refusals", 5, 1),
    ):
        value = entry.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            raise ForwardConfigError(f"{where}: {key} must be a number >= {low}, not {value!r}")
        numbers[key] = value
    if numbers["retry_max_s"] < numbers["retry_min_s"]:
        raise ForwardConfigError(f"{where}: retry_max_s is below retry_min_s")
    return Destination(
        name=name,
        kind=kind,  # checked against KINDS above
        url=url,
        username=username,
        password=password,
        token=token,
        sources=tuple(sources),
        path=path_pattern,
        since=since,
        files=files,
        retry_min_s=float(numbers["retry_min_s"]),
        retry_max_s=float(numbers["retry_max_s"]),
        timeout_s=float(numbers["timeout_s"]),
        max_refusals=int(numbers["max_refusals"]),
    )


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise ForwardConfigError(f"{where}: {key} is missing or not text")
    return value


def _secret(entry: Mapping[str, Any], key: str, env: Mapping[str, str], where: str) -> str | None:
    var = entry.get(key)
    if var is None:
        return None
    if not isinstance(var, str) or not var:
        raise ForwardConfigError(f"{where}: {key} must name an environment variable")
    value = env.get(var)
    if not value or value.startswith("CHANGE-ME"):
        raise ForwardConfigError(f"{where}: environment variable {var} ({key}) is unset or empty")
    return value


def _placeholders(pattern: str, where: str) -> set[str]:
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    except ValueError as exc:
        raise ForwardConfigError(f"{where}: path {pattern!r}: {exc}") from None
    unknown = used - PLACEHOLDERS
    if unknown:
        raise ForwardConfigError(
            f"{where}: path placeholder(s) {', '.join(sorted(unknown))} unknown "
            f"(known: {', '.join(sorted(PLACEHOLDERS))})"
        )
    return used

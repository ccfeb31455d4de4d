"""Hostile input: the Circular 10 and JSON parsers under structured fuzzing, a station posing as
another over MQTT, and the console's auth under SQL injection, path traversal, expired sessions,
CSRF-less posts and role escalation.

The parsers must never raise and never hang (hypothesis ``deadline``); every line or item they
are given comes out as a reading or as a rejection naming it. The console runs in-process on a
real migrated PostgreSQL (fixtures and helpers from test_console_api): no hostile request may
produce a 500, leak a row it did not ask for, or change anything.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from core.errors import RejectReason
from core.records import Channel, RawReading
from core.settings import Settings
from stations.circular10 import (
    MAX_FILE_BYTES,
    ParseResult,
    format_file,
    parse_file,
    parse_json,
    to_local_stamp,
)
from stations.registry import load_registry
from tests.integration import gateway_support
from tests.integration import test_console_api as console_api
from tests.integration.test_console_api import PASSWORD, login, new_client, running

# The console tests' fixtures: a migrated database with users of every role (``db``), the app
# on it (``app``) and one logged-in client per role (``clients``).
db = console_api.db
app = console_api.app
clients = console_api.clients
# The gateway tests' fixtures: unique topics (``gw_settings``), the registry, and Mosquitto on
# the shipped deploy/mosquitto/mosquitto.conf with `quantrac mqtt-acl`'s files (``secured_broker``).
gw_settings = gateway_support.gw_settings
registry = gateway_support.registry
secured_broker = gateway_support.secured_broker

pytestmark = pytest.mark.integration

REGISTRY = load_registry()
NOW = datetime(2026, 11, 24, 3, 10, tzinfo=UTC)
SOURCE = REGISTRY.get("HD-KK-01")
FUZZ = settings(
    max_examples=150,
    deadline=timedelta(milliseconds=500),  # a parse that takes longer is a hang
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _valid_readings(n: int) -> list[RawReading]:
    out = []
    for i, spec in enumerate(SOURCE.parameters[:n]):
        at = NOW - timedelta(minutes=5 * (i + 1))
        out.append(
            RawReading(
                source_id=SOURCE.id,
                parameter=spec.code.value,
                value=12.5 + i,
                unit=str(spec.unit),
                measured_at=at,
                status="00",
                received_at=NOW,
                channel=Channel.FTP.value,
                origin="fuzz",
            )
        )
    return out


NAME, VALID_BODY = format_file(_valid_readings(6), REGISTRY, stamp=NOW)
VALID_LINES = VALID_BODY.decode().split("\r\n")[:-1]


def _check(result: ParseResult, items: int | None) -> None:
    """What every parse must satisfy, whatever it was given."""
    for r in result.readings:
        assert r.source_id == SOURCE.id
        assert SOURCE.parameter(r.parameter) is not None
        assert math.isfinite(r.value)
        assert r.measured_at <= NOW + timedelta(minutes=5)
        assert r.status in {"00", "01", "02"}
    for rej in result.rejections:
        RejectReason(rej.reason)  # a closed vocabulary
        assert rej.message
    if items is not None and not result.file_rejected:
        assert len(result.readings) + len(result.rejections) == items


# --- the file form: valid files with one field, separator or line made wrong ------------------

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "NaN",
            "inf",
            "-inf",
            "1e999",
            "-0",
            "0x1A",
            "1_000",
            "１２３",  # full-width digits
            "٣٫٥",  # Arabic-Indic digits and decimal separator
            "12,5,6",
            "99999999999999999999999999999",
            "20261324250000",
            "00000000000000",
            "99991231235959",
            "' OR '1'='1",
            "../../etc/passwd",
            "%2e%2e%2f",
            "\u202e",
            "\ufeff",
            "PM2,5",
            "µg/m³",
            "03",
            "",
        ]
    ),
)


@given(
    line=st.integers(min_value=0, max_value=len(VALID_LINES) - 1),
    field=st.integers(min_value=0, max_value=4),
    text=HOSTILE_TEXT,
)
@FUZZ
def test_file_with_one_hostile_field(line: int, field: int, text: str) -> None:
    lines = [ln.split("\t") for ln in VALID_LINES]
    lines[line][field] = text.replace("\r", "").replace("\n", "")
    body = "\r\n".join("\t".join(f) for f in lines).encode("utf-8", "surrogatepass")
    result = parse_file(NAME, body, REGISTRY, received_at=NOW, channel=Channel.FTP)
    # Circular 10 lines end in CR/LF; str.splitlines() would also split on NEL (\x85) or
    # U+2028, which inside a field are just bad characters of that line.
    text_lines = re.split(r"\r\n|\r|\n", body.decode("utf-8", "replace"))
    nonblank = sum(1 for ln in text_lines if ln.strip())
    _check(result, None if result.file_rejected else nonblank)


@given(
    sep=st.sampled_from(["\t", ";", ",", " ", "\t\t", "|", "\x0b", "\u00a0"]),
    eol=st.sampled_from(["\r\n", "\n", "\r", "\n\r", "\r\r\n"]),
    extra=st.lists(HOSTILE_TEXT, max_size=3),
    repeat=st.integers(min_value=1, max_value=50),
)
@FUZZ
def test_file_with_wrong_separators_and_repeats(
    sep: str, eol: str, extra: list[str], repeat: int
) -> None:
    lines = [sep.join([*ln.split("\t"), *extra]) for ln in VALID_LINES] * repeat
    body = eol.join(lines).encode("utf-8", "surrogatepass")
    result = parse_file(NAME, body, REGISTRY, received_at=NOW, channel=Channel.FTP)
    _check(result, None)
    # a reading is never produced twice from repeated lines: (parameter, time) is unique
    keys = [(r.parameter, r.measured_at) for r in result.readings]
    assert len(keys) == len(set(keys))


@given(name=st.one_of(st.text(max_size=80), HOSTILE_TEXT.map(lambda t: f"{t}{NAME}")))
@FUZZ
def test_hostile_file_names(name: str) -> None:
    result = parse_file(name, VALID_BODY, REGISTRY, received_at=NOW, channel=Channel.FTP)
    _check(result, None)
    if "/" in name or "\\" in name or ".." in name:
        assert not result.readings, f"{name!r} must not be accepted"


@pytest.mark.parametrize(
    ("label", "body"),
    [
        ("one 1 MiB line of digits", b"1" * (MAX_FILE_BYTES - 1)),
        ("100k short lines", b"SO2\t1\tug/Nm3\t20261124095500\t00\n" * 30_000),
        ("100k tabs", b"\t" * 100_000),
        ("just over the size limit", b"x" * (MAX_FILE_BYTES + 1)),
    ],
)
def test_pathological_files_finish_fast(label: str, body: bytes) -> None:
    t0 = time.perf_counter()
    result = parse_file(NAME, body, REGISTRY, received_at=NOW, channel=Channel.FTP)
    assert time.perf_counter() - t0 < 10, label
    _check(result, None)
    assert result.rejections or result.readings


# --- the JSON form --------------------------------------------------------------------------

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    HOSTILE_TEXT,
)
JSON_ANY = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
VALID_ITEM = {
    "parameter": "SO2",
    "value": 12.5,
    "unit": "µg/Nm3",
    "measured_at": to_local_stamp(NOW - timedelta(minutes=5)),
    "status": "00",
}


@given(doc=JSON_ANY)
@FUZZ
def test_json_of_any_shape(doc: Any) -> None:
    data = json.dumps(doc).encode()
    result = parse_json(data, REGISTRY, received_at=NOW, channel=Channel.HTTP)
    _check(result, None)
    assert result.readings or result.rejections


@given(
    items=st.lists(
        st.one_of(
            JSON_ANY,
            st.builds(
                lambda key, value: {**VALID_ITEM, key: value},
                st.sampled_from([*VALID_ITEM, "extra"]),
                JSON_ANY,
            ),
            st.builds(
                lambda key: {k: v for k, v in VALID_ITEM.items() if k != key},
                st.sampled_from(list(VALID_ITEM)),
            ),
        ),
        min_size=1,
        max_size=8,
    )
)
@FUZZ
def test_json_items_each_accounted_for(items: list[Any]) -> None:
    data = json.dumps({"source_id": SOURCE.id, "readings": items}).encode()
    result = parse_json(data, REGISTRY, received_at=NOW, channel=Channel.HTTP)
    _check(result, len(items))


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("deeply nested lists", b"[" * 100_000 + b"]" * 100_000),
        ("deeply nested objects", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
        ("huge integer", b'{"source_id":"HD-KK-01","readings":[{"value":' + b"9" * 5000 + b"}]}"),
        (
            "10k items",
            json.dumps({"source_id": SOURCE.id, "readings": [VALID_ITEM] * 10_000}).encode(),
        ),
        ("lone surrogate", b'{"source_id":"\\ud800","readings":[]}'),
    ],
)
def test_pathological_json_finishes_fast(label: str, data: bytes) -> None:
    t0 = time.perf_counter()
    result = parse_json(data, REGISTRY, received_at=NOW, channel=Channel.HTTP)
    assert time.perf_counter() - t0 < 10, label
    _check(result, None)
    assert result.readings or result.rejections


# --- MQTT: a station posing as another -------------------------------------------------------
# HD-KK-02 holds real credentials (its own) and wants readings stored as HD-KK-01's. The broker
# (the shipped configuration and ACL) and the gateway together must stop every way of doing it.

NOT_AUTHORIZED = 135  # MQTT 5 reason code


def _mqtt_body(source_id: str, value: float) -> bytes:
    return json.dumps(
        {"source_id": source_id, "readings": [{**VALID_ITEM, "value": value}]}
    ).encode()


def _mqtt_client(user: str, password: str, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    return client


def _hang_up(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def test_mqtt_a_station_cannot_pose_as_another(
    gw_settings: Settings, registry: Any, secured_broker: gateway_support.SecuredBroker
) -> None:
    root, port = gw_settings.mqtt_topic_root, secured_broker.port
    settings = gw_settings.model_copy(update={"mqtt_url": secured_broker.url})
    own, victim = secured_broker.accounts.password("HD-KK-02"), "HD-KK-01"
    with gateway_support.running_gateway(settings, registry) as gw:
        # the victim station, connected under its own id as dataloggers are usually set up
        honest = _mqtt_client(victim, secured_broker.accounts.password(victim), victim)
        drops: list[object] = []
        honest.on_disconnect = lambda *args: drops.append(args[3])
        assert not gateway_support.connack(honest, port).is_failure

        # its login with the attacker's password
        wrong = _mqtt_client(victim, own, "x")
        assert gateway_support.connack(wrong, port).value in (134, 135)
        wrong.loop_stop()

        attacker = secured_broker.station("HD-KK-02")
        assert not gateway_support.connack(attacker, port).is_failure
        codes = {
            topic: gateway_support.publish_v5(attacker, topic, body)
            for topic, body in [
                (f"{root}/{victim}/readings", _mqtt_body(victim, 1.0)),  # the victim's topic
                (f"{root}/hd-kk-01/readings", _mqtt_body(victim, 2.0)),  # case
                (f"{root}/{victim}/readings/x", _mqtt_body(victim, 3.0)),  # deeper
                (f"{root}/HD-KK-02/../{victim}/readings", _mqtt_body(victim, 4.0)),  # no paths
                (f"{root}/HD-KK-02/readings", _mqtt_body(victim, 5.0)),  # own topic, forged body
                (f"{root}/HD-KK-02/readings", _mqtt_body("HD-KK-02", 7.0)),  # the honest one
            ]
        }
        _hang_up(attacker)
        # taking over the victim's session, or the gateway's, by their client ids
        for client_id in (victim, f"{settings.app_id}-gateway"):
            usurper = _mqtt_client("HD-KK-02", own, client_id)
            assert not gateway_support.connack(usurper, port).is_failure
            _hang_up(usurper)
        # the victim was never disconnected and still delivers
        delivered = gateway_support.publish_v5(
            honest, f"{root}/{victim}/readings", _mqtt_body(victim, 9.0)
        )
        dropped = list(drops)  # before hanging up ourselves
        _hang_up(honest)
        raw = gateway_support.read_topic(settings, "readings.raw", 2)
        rejected = gateway_support.read_topic(settings, "readings.rejected", 1)
        mismatches = gw.counter(
            "quantrac_rejections_total", channel="mqtt", reason="sender_mismatch"
        )

    assert dropped == [], dropped
    assert not delivered.is_failure, delivered
    for topic in (f"{root}/{victim}/readings", f"{root}/hd-kk-01/readings"):
        assert codes[topic].value == NOT_AUTHORIZED, (topic, codes[topic])
    assert codes[f"{root}/{victim}/readings/x"].value == NOT_AUTHORIZED
    # a topic the gateway does not subscribe to is refused, not accepted and lost unseen
    assert codes[f"{root}/HD-KK-02/../{victim}/readings"].value == NOT_AUTHORIZED
    assert sorted((m.key, m.value["source_id"], m.value["value"]) for m in raw) == [
        ("HD-KK-01", "HD-KK-01", 9.0),
        ("HD-KK-02", "HD-KK-02", 7.0),
    ]
    assert [(m.key, m.value["reason"]) for m in rejected] == [("HD-KK-02", "sender_mismatch")]
    assert mismatches == 1


# --- the console ----------------------------------------------------------------------------

INJECTIONS = [
    "' OR '1'='1",
    "V-PM25' OR 'x'='x",
    "'; DROP TABLE violations; --",
    "1; SELECT pg_sleep(3)--",
    "HD-KK-01' UNION SELECT username, password_hash FROM users --",
    '" OR ""="',
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "....//....//etc/passwd",
    "..\\..\\windows\\win.ini",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "x" * 5000,
    "-1",
    "99999999999999999999999",
]
# What each payload would leak: a passwd file, a hash, another row.
LEAKS = ("root:x:", "$argon2", "[fonts]")


def _path(payload: str) -> str:
    return quote(payload, safe="")


def _params(payload: str) -> list[tuple[str, str, dict[str, str]]]:
    """(method, url, query) for every path and query parameter of /api/* with ``payload``."""
    p = _path(payload)
    return [
        ("GET", f"/api/violations/{p}", {}),
        ("GET", f"/api/sources/{p}", {}),
        ("GET", f"/api/sources/{p}/series", {"parameter": "PM2.5"}),
        ("GET", "/api/sources/HD-KK-01/series", {"parameter": payload}),
        ("GET", "/api/sources/HD-KK-01/series", {"parameter": "PM2.5", "resolution": payload}),
        ("GET", "/api/sources/HD-KK-01/series", {"parameter": "PM2.5", "start": payload}),
        ("GET", "/api/sources/HD-KK-01/series", {"parameter": "PM2.5", "end": payload}),
        *[
            ("GET", "/api/violations", {name: payload})
            for name in ("state", "kind", "source", "district", "severity", "since", "until")
        ],
        ("GET", "/api/audit", {"target": payload}),
        ("GET", f"/violations/{p}", {}),
        ("GET", f"/sources/{p}", {}),
        ("GET", f"/static/{p}", {}),
    ]


async def _send(c: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response:
    """The response, or a synthetic 500 when the app raised (a real server would answer 500)."""
    try:
        return await c.request(method, url, **kw)
    except Exception as exc:
        return httpx.Response(500, text=f"{type(exc).__name__}: {exc}")


def _no_leak(r: httpx.Response, what: str) -> None:
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
    for marker in LEAKS:
        assert marker not in r.text, f"{what} leaked {marker!r}"


def _counts(conninfo: str) -> tuple[int, ...]:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM violations), (SELECT count(*) FROM users),"
            " (SELECT count(*) FROM acknowledgements), (SELECT count(*) FROM readings),"
            " (SELECT count(*) FROM violations WHERE acknowledged_at IS NOT NULL)"
        ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("payload", INJECTIONS, ids=lambda s: repr(s[:30]))
async def test_injection_and_traversal_in_every_parameter(
    clients: Any, db: str, payload: str
) -> None:
    before = _counts(db)
    for method, url, query in _params(payload):
        c, _ = clients["adm" if url == "/api/audit" else "op"]  # the audit log is admin-only
        r = await _send(c, method, url, params=query)
        what = f"{method} {url} {query}"
        _no_leak(r, what)
        if r.status_code == 200 and url.startswith("/api/violations") and not query:
            pytest.fail(f"{what} found a violation for a hostile id")
        numeric_time = set(query) & {"since", "until"} and payload.lstrip("-").isdigit()
        if r.status_code == 200 and url in ("/api/violations", "/api/audit") and not numeric_time:
            assert r.json() == [], what  # a hostile filter value matches no row
        if r.status_code == 200 and url.startswith("/api/sources/HD-KK-01/series"):
            assert query.get("parameter") == "PM2.5" or r.json() == [], what
    assert _counts(db) == before


@pytest.mark.parametrize("payload", INJECTIONS[:8], ids=lambda s: repr(s[:30]))
async def test_injection_in_posted_bodies_and_ids(clients: Any, db: str, payload: str) -> None:
    before = _counts(db)
    op, op_csrf = clients["op"]
    r = await op.post(
        f"/api/violations/{_path(payload)}/ack",
        json={"note": payload},
        headers={"X-CSRF-Token": op_csrf},
    )
    _no_leak(r, "ack")
    assert r.status_code in (404, 405, 422), r.text
    adm, adm_csrf = clients["adm"]
    r = await adm.post(
        "/api/users",
        json={"username": payload, "password": payload * 3, "role": "admin"},
        headers={"X-CSRF-Token": adm_csrf},
    )
    _no_leak(r, "create user")
    assert r.status_code == 422, r.text  # the username pattern refuses every payload
    r = await adm.put(
        f"/api/users/{_path(payload)}", json={"disabled": True}, headers={"X-CSRF-Token": adm_csrf}
    )
    _no_leak(r, "update user")
    assert r.status_code in (404, 405, 422), r.text
    assert _counts(db) == before


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("op", "wrong password"),
        ("op", ""),
        ("op", "' OR '1'='1"),
        ("OP", PASSWORD),  # usernames are exact
        ("nobody", PASSWORD),
        ("op", PASSWORD + " "),
        ("op", "x" * 1024),  # the longest password the policy allows
    ],
)
async def test_wrong_credentials_never_log_in(app: FastAPI, username: str, password: str) -> None:
    async with running(app), new_client(app) as c:
        await c.get("/login")
        token = c.cookies["qt_login_csrf"]
        form = {"username": username, "password": password, "csrf_token": token}
        r = await _send(c, "POST", "/login", data=form)
        session = "qt_session" in c.cookies
        me = (await c.get("/api/me")).status_code
    assert r.status_code == 401, r.text[:200]
    assert not session and me == 401


@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("' OR '1'='1", "' OR '1'='1", "username"),
        ("op' --", PASSWORD, "username"),
        ("", PASSWORD, "username"),
        ("u" * 65, PASSWORD, "username"),
        ("x" * 900_000, PASSWORD, "username"),  # 900 kB: was a 500 (index row too large)
        ("opé", PASSWORD, "username"),
        ("op", "x" * 1025, "password"),
        ("op", "x" * 900_000, "password"),
    ],
    ids=lambda v: v[:20] + (f"…({len(v)})" if len(v) > 20 else ""),
)
async def test_malformed_login_fields_get_400_before_any_query(
    app: FastAPI, db: str, username: str, password: str, field: str
) -> None:
    """A username outside the users table's pattern, or an over-long password, is refused
    with a message naming the field; nothing is queried, hashed or recorded."""
    async with running(app), new_client(app) as c:
        await c.get("/login")
        form = {
            "username": username,
            "password": password,
            "csrf_token": c.cookies["qt_login_csrf"],
        }
        r = await _send(c, "POST", "/login", data=form)
        me = (await c.get("/api/me")).status_code
    assert r.status_code == 400, r.text[:200]
    assert f"{field}:" in r.text and me == 401
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM login_attempts),"
            " (SELECT count(*) FROM audit_log WHERE action LIKE 'login%%')"
        ).fetchone()
    assert row == (0, 0)


NUL_CASES = [
    ("GET", "/api/violations/V-PM25%00", {}),
    ("GET", "/api/sources/HD-KK-01%00", {}),
    ("GET", "/api/violations", {"source": "HD-KK-01\x00"}),
    ("GET", "/api/audit", {"target": "\x00"}),
    ("GET", "/api/sources/HD-KK-01/series", {"parameter": "PM2.5\x00"}),
]


@pytest.mark.parametrize(("method", "url", "query"), NUL_CASES, ids=lambda x: str(x)[:40])
async def test_nul_bytes_in_parameters_are_refused_not_500(
    clients: Any, method: str, url: str, query: dict[str, str]
) -> None:
    """PostgreSQL text cannot hold NUL: the app must refuse such input (4xx), not crash."""
    c, _ = clients["reg"]
    r = await _send(c, method, url, params=query)
    assert 400 <= r.status_code < 500, f"{method} {url} {query}: {r.status_code} {r.text[:200]}"


async def test_nul_byte_in_login_username_is_refused_not_500(app: FastAPI) -> None:
    # Bounded: when the login query raised, the app's shutdown was seen to hang.
    async with asyncio.timeout(30), running(app), new_client(app) as c:
        await c.get("/login")
        token = c.cookies["qt_login_csrf"]
        form = {"username": "op\x00", "password": PASSWORD, "csrf_token": token}
        r = await _send(c, "POST", "/login", data=form)
    assert 400 <= r.status_code < 500, r.text[:200]  # refused (400), never a 500


async def test_expired_session_gets_401(app: FastAPI, db: str) -> None:
    async with running(app), new_client(app) as c:
        csrf = await login(c, "op")
        assert (await c.get("/api/violations")).status_code == 200
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(
                "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE username = 'op'"
            )
        assert (await c.get("/api/me")).status_code == 401
        assert (await c.get("/api/violations")).status_code == 401
        r = await c.post(
            "/api/violations/V-PM25/ack", json={"note": "late"}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status_code == 401
        page = await c.get("/board")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert _counts(db)[2] == 0  # no acknowledgement


async def test_forged_session_cookie_gets_401(app: FastAPI) -> None:
    async with running(app), new_client(app) as c:
        for forged in ["x", "' OR '1'='1", "../../etc/passwd", "0" * 64, "a" * 5000]:
            c.cookies.set("qt_session", forged)
            r = await c.get("/api/me")
            assert r.status_code == 401, forged


@pytest.mark.parametrize(
    ("who", "method", "url", "body"),
    [
        ("op", "POST", "/api/violations/V-PM25/ack", {"note": "seen"}),
        ("adm", "POST", "/api/users", {"username": "eve", "password": "p" * 12, "role": "admin"}),
        ("adm", "PUT", "/api/users/op", {"disabled": True}),
        ("reg", "POST", "/logout", None),
    ],
)
@pytest.mark.parametrize("token", [None, "", "forged", "reuse-other"])
async def test_posts_without_the_session_csrf_token_get_403(
    clients: Any, db: str, who: str, method: str, url: str, body: Any, token: str | None
) -> None:
    before = _counts(db)
    c, _ = clients[who]
    headers = {}
    if token == "reuse-other":  # another user's valid token is not this session's
        other = "op" if who != "op" else "reg"
        headers["X-CSRF-Token"] = clients[other][1]
    elif token is not None:
        headers["X-CSRF-Token"] = token
    r = await c.request(method, url, json=body, headers=headers)
    assert r.status_code == 403, r.text[:200]
    assert _counts(db) == before
    assert (await c.get("/api/me")).status_code == 200  # not logged out either


@pytest.mark.parametrize(
    ("who", "method", "url", "body"),
    [
        ("reg", "POST", "/api/violations/V-PM25/ack", {"note": "regulators only read"}),
        ("reg", "POST", "/api/users", {"username": "eve", "password": "p" * 12, "role": "admin"}),
        ("reg", "PUT", "/api/users/reg", {"disabled": False}),
        ("reg", "PUT", "/api/users/adm", {"disabled": True}),
        ("reg", "GET", "/api/users", None),
        ("op", "POST", "/api/users", {"username": "eve", "password": "p" * 12, "role": "admin"}),
        ("op", "PUT", "/api/users/adm", {"disabled": True}),
        ("op", "GET", "/api/users", None),
    ],
)
async def test_role_escalation_is_refused(
    clients: Any, db: str, who: str, method: str, url: str, body: Any
) -> None:
    before = _counts(db)
    c, csrf = clients[who]
    r = await c.request(method, url, json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403, r.text[:200]
    assert _counts(db) == before
    me = (await c.get("/api/me")).json()
    assert me["role"] == {"reg": "regulator", "op": "operator"}[who]


async def test_admin_cannot_create_an_unknown_role(clients: Any, db: str) -> None:
    c, csrf = clients["adm"]
    for role in ["superuser", "ADMIN", "admin ", "' OR '1'='1", ""]:
        r = await c.post(
            "/api/users",
            json={"username": "mallory", "password": "p" * 12, "role": role},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 422, role
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE username = 'mallory'").fetchone() == (
            0,
        )


# --- security headers (issue 16) -----------------------------------------------------------


def _csp(header: str | None) -> dict[str, list[str]]:
    assert header, "no Content-Security-Policy"
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


HEADER_CASES = [
    ("adm", "/"),
    ("adm", "/board"),
    ("adm", "/violations/V-PM25"),
    ("adm", "/sources/HD-KK-01"),
    ("adm", "/reports"),
    ("adm", "/audit"),
    ("adm", "/users"),
    ("adm", "/api/violations"),
    ("adm", "/api/violations/NOPE"),  # 404
    ("adm", "/api/violations/V-PM25%00"),  # 400 from the NUL guard
    ("adm", "/static/console.js"),
    ("adm", "/bands.css"),
    ("adm", "/openapi.json"),
    ("reg", "/audit"),  # 403 page
    ("reg", "/api/users"),  # 403
    ("anon", "/login"),
    ("anon", "/"),  # redirect to /login
    ("anon", "/api/me"),  # 401
    ("anon", "/api/events"),  # 401
    ("anon", "/healthz"),
]


async def test_every_response_carries_the_security_headers(clients: Any) -> None:
    """A strict CSP (own origin only, no inline script or style, no framing), X-Frame-Options,
    nosniff and a referrer policy on pages, API answers, errors, redirects and static files;
    no HSTS over plain HTTP."""
    for who, path in HEADER_CASES:
        r = await clients[who][0].get(path)
        what = f"{who} {path} ({r.status_code})"
        csp = _csp(r.headers.get("content-security-policy"))
        assert csp["default-src"] == ["'self'"], what
        assert csp["script-src"] == ["'self'"], what
        assert csp["style-src"] == ["'self'"], what
        assert csp["frame-ancestors"] == ["'none'"], what
        assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"], what
        assert r.headers["x-frame-options"] == "DENY", what
        assert r.headers["x-content-type-options"] == "nosniff", what
        assert r.headers["referrer-policy"] in ("same-origin", "no-referrer"), what
        assert "strict-transport-security" not in r.headers, what


async def test_api_docs_get_their_own_policy_still_unframeable(clients: Any) -> None:
    """/docs loads Swagger UI from its CDN with an inline bootstrap: allowed there only."""
    r = await clients["anon"][0].get("/docs")
    csp = _csp(r.headers["content-security-policy"])
    assert "https://cdn.jsdelivr.net" in csp["script-src"]
    assert csp["frame-ancestors"] == ["'none'"] and r.headers["x-frame-options"] == "DENY"
    page = await clients["anon"][0].get("/docs/../")  # not a way round: a console page's policy
    assert "cdn.jsdelivr.net" not in page.headers["content-security-policy"]


async def test_hsts_only_over_tls(db: str, tmp_path: Any) -> None:
    """HSTS when the request arrived over TLS, or when a reverse proxy terminates TLS
    (``console_behind_tls``); never on plain HTTP, where it would be meaningless."""
    plain = console_api.create_app(console_api.Settings(database_url=db, data_dir=tmp_path))
    proxied = console_api.create_app(
        console_api.Settings(database_url=db, data_dir=tmp_path, console_behind_tls=True)
    )
    async with running(plain), running(proxied):
        https = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=plain), base_url="https://testserver"
        )
        async with new_client(plain) as c, new_client(proxied) as p, https:
            assert "strict-transport-security" not in (await c.get("/login")).headers
            for client in (p, https):
                for path in ("/login", "/api/me", "/static/console.css"):
                    hsts = (await client.get(path)).headers["strict-transport-security"]
                    max_age = int(re.search(r"max-age=(\d+)", hsts).group(1))  # type: ignore[union-attr]
                    assert max_age >= 180 * 86400, hsts


# In a tag: an inline script, a style attribute or an event-handler attribute.
INLINE = re.compile(
    r"<script(?![^>]*\ssrc=)[^>]*>|<[a-z][^>]*\sstyle\s*=|<[a-z][^>]*\son[a-z]+\s*=|javascript:",
    re.IGNORECASE,
)


async def test_pages_hold_nothing_the_csp_would_block(clients: Any) -> None:
    """What the policy forbids must not be in the pages, or the console would break under it:
    no inline script, style attribute or handler; scripts and stylesheets from the console."""
    pages = [("adm", p) for p in console_api.PAGES] + [("anon", "/login"), ("op", "/")]
    for who, path in pages:
        text = (await clients[who][0].get(path)).text
        assert INLINE.findall(text) == [], f"{who} {path}"
        for tag in re.findall(r"<(?:script|link)\b[^>]*>", text):
            url = re.search(r'(?:src|href)="([^"]*)"', tag)
            assert url and url.group(1).startswith("/") and not url.group(1).startswith("//"), tag


# --- the live stream after its session is gone (issue 16) ----------------------------------


async def _events_to_end(lines: Any) -> list[tuple[str, str]]:
    """(event, data) of every message until the server closes the stream."""
    out: list[tuple[str, str]] = []
    event = ""
    async for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            out.append((event, line[6:]))
    return out


AFTER = ("V-AFTER", "exceedance", "HD-KK-01", "SO2", "open", "2-3", 1, 300.0, 100.0)


async def _hello(lines: Any) -> None:
    async for line in lines:
        if line.startswith("data: "):
            return


async def _violation(lines: Any, violation_id: str) -> None:
    async for line in lines:
        if line.startswith("data: ") and json.loads(line[6:]).get("violation_id") == violation_id:
            return
    raise AssertionError(f"stream ended before {violation_id}")


async def _revoke(how: str, db: str, op: httpx.AsyncClient, adm: httpx.AsyncClient) -> None:
    if how.startswith("disabled"):
        csrf = (await adm.get("/api/me")).json()["csrf_token"]
        r = await adm.put("/api/users/op", json={"disabled": True}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
    elif how == "logged_out":  # the same session, ended from another tab
        async with httpx.AsyncClient(base_url=str(op.base_url), timeout=10) as tab:
            tab.cookies.set("qt_session", op.cookies["qt_session"])
            csrf = (await tab.get("/api/me")).json()["csrf_token"]
            assert (await tab.post("/logout", headers={"X-CSRF-Token": csrf})).status_code == 303
    else:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(
                "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE username = 'op'"
            )


@pytest.mark.parametrize("how", ["disabled", "logged_out", "expired", "disabled_quiet"])
async def test_sse_stream_ends_when_its_session_does(db: str, tmp_path: Any, how: str) -> None:
    """A user watching the live stream is disabled by an admin (or logs out in another tab, or
    the session expires): the stream ends at its next keepalive or event with
    ``session_ended``, and the violation that appears afterwards reaches another user's stream
    but never this one. ``disabled_quiet``: no event at all, only the keepalive re-checks."""
    app = console_api.create_app(
        console_api.Settings(database_url=db, data_dir=tmp_path, console_sse_keepalive_s=0.3),
        poll_interval_s=0.2,
    )
    with console_api.serving(app) as base:
        async with (
            httpx.AsyncClient(base_url=base, timeout=10) as op,
            httpx.AsyncClient(base_url=base, timeout=10) as adm,
            httpx.AsyncClient(base_url=base, timeout=10) as reg,
        ):
            for client, name in ((op, "op"), (adm, "adm"), (reg, "reg")):
                await login(client, name)
            async with (
                op.stream("GET", "/api/events") as stream,
                reg.stream("GET", "/api/events") as watcher,
            ):
                lines, watched = stream.aiter_lines(), watcher.aiter_lines()
                await asyncio.wait_for(_hello(lines), 5)
                await asyncio.wait_for(_hello(watched), 5)
                await _revoke(how, db, op, adm)
                if how != "disabled_quiet":
                    with psycopg.connect(db, autocommit=True) as conn:
                        console_api._insert_violation(conn, AFTER)
                    await asyncio.wait_for(_violation(watched, "V-AFTER"), 10)  # reg got it
                rest = await asyncio.wait_for(_events_to_end(lines), 10)  # op's stream ends
            assert rest == [("session_ended", "{}")]
            assert (await op.get("/api/events")).status_code == 401  # and cannot come back


# --- the reports API (issue 16): periods no report can cover, hostile parameters -------------

REPORT_REFUSALS = [
    ("compliance", {"source": "HD-KK-01", "period": "1999"}, "the first year with data"),
    ("compliance", {"source": "HD-KK-01", "period": "2999-01"}, "after the current year"),
    ("air-quality", {"source": "HD-KK-01", "period": "2022-12"}, "QCVN 05:2023/BTNMT existed"),
    ("province", {"period": "2019-01-01..2026-06-30"}, "at most 366 days"),
    ("export", {"source": "HD-KK-01", "period": "2025"}, "at most 92 days"),
    ("compliance", {"source": "HD-KK-01", "period": "0000"}, "year 0 is out of range"),
    ("export", {"source": "HD-KK-01", "period": "9999-12-31..9999-12-31"}, "current year"),
    ("province", {"period": "9999-12"}, "out of range"),
]


@pytest.mark.parametrize(("kind", "query", "message"), REPORT_REFUSALS, ids=lambda x: str(x))
async def test_report_periods_no_report_can_cover_get_400_with_the_reason(
    clients: Any, kind: str, query: dict[str, str], message: str
) -> None:
    c, _ = clients["reg"]
    for fmt in ("csv", "xlsx", "pdf"):
        r = await _send(c, "GET", f"/api/reports/{kind}", params={**query, "format": fmt})
        if kind == "export" and fmt == "pdf":
            assert r.status_code == 400 and "not pdf" in r.text, r.text
            continue
        assert r.status_code == 400, f"{kind} {query} {fmt}: {r.status_code} {r.text[:300]}"
        assert message in r.json()["detail"], r.text


@pytest.mark.parametrize("payload", INJECTIONS, ids=lambda s: repr(s[:30]))
async def test_injection_in_report_parameters(clients: Any, db: str, payload: str) -> None:
    before = _counts(db)
    c, _ = clients["reg"]
    cases = [
        ("/api/reports/compliance", {"source": "HD-KK-01", "period": payload}),
        ("/api/reports/compliance", {"source": payload, "period": "2026-11"}),
        ("/api/reports/export", {"source": payload, "period": "2026-11"}),
        ("/api/reports/province", {"period": payload, "lang": payload}),
        (
            "/api/reports/air-quality",
            {"source": "HD-KK-01", "period": "2026-11", "format": payload},
        ),
        ("/api/reports/evidence", {"violation": payload}),
        (f"/api/reports/evidence/{_path(payload)}.zip", {}),
        (f"/api/reports/{_path(payload)}", {"period": "2026-11"}),
    ]
    for url, query in cases:
        r = await _send(c, "GET", url, params=query)
        _no_leak(r, f"GET {url} {query}")
        assert r.status_code in (400, 404, 422), f"{url} {query}: {r.status_code} {r.text[:200]}"
    assert _counts(db) == before

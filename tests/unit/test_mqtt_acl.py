"""Mosquitto's password and ACL files as ``quantrac mqtt-acl`` writes them (pure logic)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from stations.mqtt_acl import (
    ITERATIONS,
    SALT_BYTES,
    MqttAclError,
    acl_file,
    gateway_login,
    hash_password,
    password_file,
)

# `mosquitto_passwd -c -b pw HD-KK-01 'trạm-quan-trắc 01'` (Mosquitto 2.0.11, Debian 12)
MOSQUITTO_PASSWD_LINE = (
    "HD-KK-01:$7$101$RspsBG6QVO1N+Yuk$7Y26WQ/FTl9Ndd8fnW+wI5VlFNQa6XJKK0S8qu4PDp+iMM5B0bHaktb"
    "+CchkMRjJpsWG/kX23COsgnl+dHmLPQ=="
)
MOSQUITTO_PASSWORD = "trạm-quan-trắc 01"
_B64 = r"[A-Za-z0-9+/]+={0,2}"
FORMAT = re.compile(rf"\$7\$(\d+)\$({_B64})\$({_B64})")


def verify(stored: str, password: str) -> bool:
    """What Mosquitto does at CONNECT: PBKDF2-HMAC-SHA512 with the stored salt and iterations."""
    m = FORMAT.fullmatch(stored)
    assert m, f"not a $7$ hash: {stored!r}"
    iterations, salt, digest = int(m[1]), base64.b64decode(m[2]), base64.b64decode(m[3])
    again = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return again == digest


def test_hash_has_mosquittos_format_and_recomputes_from_its_salt() -> None:
    stored = hash_password("s3cret-station-pw")
    m = FORMAT.fullmatch(stored)
    assert m, stored
    assert int(m[1]) == ITERATIONS == 101
    assert len(base64.b64decode(m[2])) == SALT_BYTES == 12
    assert len(base64.b64decode(m[3])) == 64  # SHA-512
    assert verify(stored, "s3cret-station-pw")
    assert not verify(stored, "s3cret-station-pX")


def test_every_hash_has_its_own_salt() -> None:
    first, second = hash_password("same"), hash_password("same")
    assert first != second
    assert verify(first, "same") and verify(second, "same")


def test_a_given_salt_reproduces_mosquitto_passwds_own_line() -> None:
    """Same algorithm, encoding and layout as the broker's tool: from its salt, byte for byte."""
    user, _, stored = MOSQUITTO_PASSWD_LINE.partition(":")
    assert verify(stored, MOSQUITTO_PASSWORD)  # the verifier above is Mosquitto's rule
    salt = base64.b64decode(stored.split("$")[3])
    assert f"{user}:{hash_password(MOSQUITTO_PASSWORD, salt)}" == MOSQUITTO_PASSWD_LINE


def test_password_file_has_one_sorted_line_per_login() -> None:
    text = password_file({"HD-KK-02": "b", "gateway": "g", "HD-KK-01": "a"})
    lines = text.splitlines()
    assert [line.partition(":")[0] for line in lines] == ["HD-KK-01", "HD-KK-02", "gateway"]
    for line, password in zip(lines, ["a", "b", "g"], strict=True):
        assert verify(line.partition(":")[2], password)
    assert text.endswith("\n")


@pytest.mark.parametrize("user", ["", "HD KK", "a:b", "x/y", "HD-#", "HD-+"])
def test_names_mosquitto_cannot_take_are_refused(user: str) -> None:
    with pytest.raises(MqttAclError, match="cannot be an MQTT user"):
        password_file({user: "pw"})


def test_acl_lets_each_station_write_its_own_subtree_and_only_the_gateway_read() -> None:
    text = acl_file(["HD-KK-02", "HD-KK-01"], "gateway", "quantrac")
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert rules == [
        "user gateway",
        "topic read quantrac/#",
        "user HD-KK-01",
        "topic write quantrac/HD-KK-01/readings",
        "user HD-KK-02",
        "topic write quantrac/HD-KK-02/readings",
    ]
    with pytest.raises(MqttAclError):
        acl_file(["HD-KK-01"], "gateway", "quantrac/#")


def test_gateway_login_comes_from_the_url_and_is_required() -> None:
    login = gateway_login("mqtt://gateway:p%40ss%3Aw0rd@mosquitto:1883")
    assert (login.user, login.password) == ("gateway", "p@ss:w0rd")
    for url in (None, "", "mqtt://mosquitto:1883", "mqtt://gateway@mosquitto:1883"):
        with pytest.raises(MqttAclError, match="QUANTRAC_MQTT_URL"):
            gateway_login(url)

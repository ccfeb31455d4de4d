"""The destinations file and the pure forwarding rules (stations/forward_config.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from stations.forward_config import (
    Destination,
    ForwardConfigError,
    idempotency_key,
    load_destinations,
    remote_name,
    remote_path,
    retry_delay,
)

ENV = {"NATIONAL_PW": "s3cret-national", "CITY_TOKEN": "tok-city"}
GOOD = """
destinations:
  - name: national
    kind: ftp
    url: ftp://127.0.0.1:2121/incoming
    username: haiduong
    password_env: NATIONAL_PW
    sources: ["HD-*"]
    path: "{province}/{facility}/{station}/{yyyy}/{mm}/{dd}/{name}"
    since: 2026-12-01
    retry_max_s: 60
  - name: city
    kind: http
    url: http://127.0.0.1:9000/files
    token_env: CITY_TOKEN
    files: all
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "destinations.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def one(tmp_path: Path, body: str) -> list[Destination]:
    return load_destinations(write(tmp_path, "destinations:\n" + body), ENV)


def test_a_good_file_loads_with_secrets_from_the_environment_and_hidden(tmp_path: Path) -> None:
    national, city = load_destinations(write(tmp_path, GOOD), ENV)
    assert national.kind == "ftp" and national.password == "s3cret-national"
    assert national.since == date(2026, 12, 1) and national.retry_max_s == 60.0
    assert city.token == "tok-city" and city.files == "all" and city.sources == ("*",)
    assert "s3cret" not in repr(national) and "tok-city" not in repr(city)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  - {name: Bad_Name, kind: http, url: 'http://h/x'}\n", "must be 1-40 of a-z"),
        ("  - {name: a, kind: sftp, url: 'ftp://h'}\n", "kind 'sftp' is not one of"),
        ("  - {name: a, kind: http, url: 'ftp://h/x'}\n", "must be http://host"),
        (
            "  - {name: a, kind: ftp, url: 'ftp://u:p@h', username: u}\n",
            "not in the url",
        ),
        ("  - {name: a, kind: ftp, url: 'ftp://h'}\n", "needs username and password_env"),
        (
            "  - {name: a, kind: ftp, url: 'ftp://h', username: u, password_env: NOPE}\n",
            "environment variable NOPE (password_env) is unset",
        ),
        ("  - {name: a, kind: http, url: 'http://h', path: '{source}/x'}\n", "must contain {name}"),
        ("  - {name: a, kind: http, url: 'http://h', path: '{when}/{name}'}\n", "when unknown"),
        (
            "  - {name: a, kind: http, url: 'http://h', files: all, path: '{station}/{name}'}\n",
            "need files: circular10",
        ),
        ("  - {name: a, kind: http, url: 'http://h', path: '../{name}'}\n", "must not hold '..'"),
        ("  - {name: a, kind: http, url: 'http://h', sources: []}\n", "non-empty list"),
        ("  - {name: a, kind: http, url: 'http://h', since: soon}\n", "since must be a date"),
        ("  - {name: a, kind: http, url: 'http://h', retry_min_s: 0}\n", "retry_min_s must be"),
        (
            "  - {name: a, kind: http, url: 'http://h', retry_min_s: 9, retry_max_s: 2}\n",
            "retry_max_s is below",
        ),
        ("  - {name: a, kind: http, url: 'http://h', passwd: x}\n", "unknown key(s) passwd"),
        (
            "  - {name: a, kind: http, url: 'http://h'}\n  - {name: a, kind: http, url: 'http://g'}\n",
            "used twice: a",
        ),
    ],
)
def test_each_mistake_is_named(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ForwardConfigError, match=None) as err:
        one(tmp_path, body)
    assert message in str(err.value)
    assert "s3cret" not in str(err.value)


def test_unreadable_and_malformed_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ForwardConfigError, match="cannot read"):
        load_destinations(tmp_path / "absent.yaml", ENV)
    with pytest.raises(ForwardConfigError, match="not valid YAML"):
        load_destinations(write(tmp_path, "destinations: [\n"), ENV)
    with pytest.raises(ForwardConfigError, match="'destinations' list"):
        load_destinations(write(tmp_path, "- a\n"), ENV)


def test_wants_matches_sources_and_circular10_names() -> None:
    d = Destination(name="n", kind="http", url="http://h", sources=("HD-NT-*",))
    assert d.wants("HD-NT-01", "HD_NT01_KHI01_20261201100000.txt")
    assert not d.wants("HD-KK-01", "HD_KK01_KHI01_20261201100000.txt")
    assert not d.wants("HD-NT-01", "http-HD-NT-01-20261201.json")
    assert d.wants("HD-NT-01", "HD_NT01_KHI01_20261201100000.1.txt")  # a corrected resend
    assert Destination(name="n", kind="http", url="http://h", files="all").wants(
        "HD-NT-01", "http-HD-NT-01-20261201.json"
    )


def test_remote_name_drops_the_archive_suffix_only_from_circular10_names() -> None:
    assert remote_name("HD_NT01_KHI01_20261201100000.1.txt") == "HD_NT01_KHI01_20261201100000.txt"
    assert remote_name("HD_NT01_KHI01_20261201100000.txt") == "HD_NT01_KHI01_20261201100000.txt"
    assert remote_name("http-x.2.json") == "http-x.2.json"


def test_remote_path_fills_the_pattern() -> None:
    d = Destination(
        name="n",
        kind="ftp",
        url="ftp://h",
        path="/{province}/{facility}/{station}/{yyyy}/{mm}/{dd}/{source}-{date}-{name}",
    )
    got = remote_path(d, "2026-12-01/HD-NT-01/HD_NT01_KHI01_20261201100000.1.txt")
    assert got == ("HD/NT01/KHI01/2026/12/01/HD-NT-01-2026-12-01-HD_NT01_KHI01_20261201100000.txt")
    flat = Destination(name="n", kind="ftp", url="ftp://h")
    assert remote_path(flat, "2026-12-01/HD-NT-01/X_Y_Z_20261201100000.txt") == (
        "X_Y_Z_20261201100000.txt"
    )


def test_idempotency_key_is_stable_per_destination_file_and_content() -> None:
    k = idempotency_key("city", "2026-12-01/S/f.txt", "ab")
    assert k == idempotency_key("city", "2026-12-01/S/f.txt", "ab")
    assert k.startswith("quantrac-") and len(k) == 49
    assert (
        len(
            {
                k,
                idempotency_key("nat", "2026-12-01/S/f.txt", "ab"),
                idempotency_key("city", "2026-12-01/S/g.txt", "ab"),
                idempotency_key("city", "2026-12-01/S/f.txt", "cd"),
            }
        )
        == 4
    )


def test_retry_delay_doubles_up_to_the_cap() -> None:
    assert [retry_delay(n, 1.0, 10.0) for n in range(0, 7)] == [0.0, 1, 2, 4, 8, 10, 10]
    assert retry_delay(10_000, 0.5, 300.0) == 300.0

"""The console's password policy (console/passwords.py) and its shipped common-password list."""

from __future__ import annotations

import pytest

from console.passwords import MAX_LENGTH, MIN_LENGTH, WeakPassword, check_password, common_passwords
from quantrac_demo import DEMO_USERS


def test_the_common_list_is_shipped_whole() -> None:
    words = common_passwords()
    assert len(words) > 19_000
    assert {"123456", "password", "qwerty123456", "administrator"} <= words
    assert all(w == w.lower() and w.isprintable() and w for w in words)


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("", f"at least {MIN_LENGTH}"),
        ("eleven-char", f"at least {MIN_LENGTH}"),
        ("x" * (MAX_LENGTH + 1), f"at most {MAX_LENGTH}"),
        ("abababababababab", "different characters"),
        ("qwerty123456", "common"),
        ("QWERTY123456", "common"),  # case does not help
        ("administrator", "common"),
        ("password2026!!", "common"),  # a listed word with digits and symbols appended
        ("Football12345", "common"),
        ("Operator-Nguyen", "the username"),
    ],
)
def test_weak_passwords_are_refused_naming_the_rule(password: str, rule: str) -> None:
    with pytest.raises(WeakPassword, match=rule) as caught:
        check_password(password, "operator-nguyen")
    assert password not in str(caught.value) or not password  # never echoes the password


@pytest.mark.parametrize(
    "password",
    ["correct horse battery", "tram-quan-trac-2026", "x" * 11 + "yzvw", "ÂuCơ-Lạc-Long-Quân"],
)
def test_good_passwords_pass(password: str) -> None:
    check_password(password, "op")


def test_demo_passwords_pass_the_policy() -> None:
    for username, password, _ in DEMO_USERS:
        check_password(password, username)

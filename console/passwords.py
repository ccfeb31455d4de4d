"""The console's password policy, applied wherever a password is set: ``quantrac users add``, the
admin's user form, a user's own password change and an admin's reset.

A password must have at least ``MIN_LENGTH`` characters (NIST SP 800-63B: length over
composition rules), at most ``MAX_LENGTH`` (hashing cost), at least ``MIN_DISTINCT`` different
characters, must differ from the username, and must not be a common password, as it is or with
digits and symbols appended ("password2024!" is "password").

``data/common_passwords.txt`` is the 20,000-entry list of common passwords by Royce Williams
(https://gist.github.com/roycewilliams/226886fd01572964e1431ac8afc999ce) as Django 5.1 ships it
(``django/contrib/auth/common-passwords.txt.gz``, BSD licence), with its ``$hex[…]`` entries
decoded, undecodable or non-printable ones dropped, lower-cased and de-duplicated: 19,640 lines.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

MIN_LENGTH = 12
MAX_LENGTH = 1024
MIN_DISTINCT = 5
COMMON_LIST = Path(__file__).parent / "data" / "common_passwords.txt"
_TAIL = re.compile(r"[\d\W_]+$")  # digits and symbols appended to a word


class WeakPassword(ValueError):
    """A password the policy refuses; the message says which rule (never the password)."""


@cache
def common_passwords() -> frozenset[str]:
    return frozenset(COMMON_LIST.read_text(encoding="utf-8").split("\n")) - {""}


def check_password(password: str, username: str = "") -> None:
    """Raise WeakPassword naming the rule the password breaks; return if it passes."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password: at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"password: at most {MAX_LENGTH} characters")
    if len(set(password)) < MIN_DISTINCT:
        raise WeakPassword(f"password: at least {MIN_DISTINCT} different characters")
    low = password.lower()
    if username and low == username.lower():
        raise WeakPassword("password: must not be the username")
    common = common_passwords()
    if low in common or _TAIL.sub("", low) in common:
        raise WeakPassword("password: too common (it is on the list of common passwords)")

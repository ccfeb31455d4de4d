"""Every setting the code or the deploy files name is a declared field of the one Settings.

A read of an undeclared name fails only at run time (or, with getattr and a default, never: the
operator's variable is silently ignored), and a misspelt QUANTRAC_* variable in an env file is
ignored by pydantic (extra="ignore"). So the source is walked: each ``settings.<name>`` read,
each ``getattr(settings, ...)`` and each ``QUANTRAC_*`` name must match a field.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "streams", "stations", "thresholds", "storage", "console", "reports", "bench")
# Names a Settings object is held under (processes, demo, tests) and attributes holding one.
SETTINGS_NAMES = {"settings", "resolved", "configured", "base_settings"}
# A full variable name: ``QUANTRAC_CONSOLE_LOGIN_`` in prose names a family, not a variable.
ENV_NAME = re.compile(r"\bQUANTRAC_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_*{])")
# The test harness's own variables (read by tests, never by Settings), and a placeholder name.
HARNESS = ("QUANTRAC_TEST_", "QUANTRAC_FUZZ_")
# Deliberately not settings: a made-up name (test_report_guards), a misspelling that must be
# refused (test_no_embedded_fallback).
NOT_SETTINGS = {"QUANTRAC_X", "QUANTRAC_KAFKA_ULR"}


def python_files() -> list[Path]:
    files = [ROOT / "quantrac_cli.py"]
    for top in (*PACKAGES, "tests"):
        files += sorted((ROOT / top).rglob("*.py"))
    return files


def deploy_files() -> list[Path]:
    deploy = ROOT / "deploy"
    return [
        *sorted((deploy / "env").glob("*.env")),
        deploy / "compose.yml",
        deploy / "Dockerfile",
        *sorted((deploy / "k8s").rglob("*.yaml")),
    ]


def declared() -> set[str]:
    """Fields, plus the methods and properties Settings (and pydantic) define."""
    return set(Settings.model_fields) | {n for n in dir(Settings) if not n.startswith("__")}


def _holds_settings(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in SETTINGS_NAMES
    return isinstance(node, ast.Attribute) and node.attr in SETTINGS_NAMES


def settings_reads(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _holds_settings(node.value):
            yield node.lineno, node.attr


def settings_getattrs(tree: ast.AST) -> Iterator[int]:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and node.args
            and _holds_settings(node.args[0])
        ):
            yield node.lineno


def test_every_settings_attribute_read_is_declared() -> None:
    known = declared()
    unknown, reads = [], 0
    for path in python_files():
        for line, name in settings_reads(ast.parse(path.read_text(encoding="utf-8"))):
            reads += 1
            if name not in known:
                unknown.append(f"{path.relative_to(ROOT)}:{line}: settings.{name}")
    assert reads > 100, f"only {reads} reads found: is the walk still looking at the code?"
    assert not unknown, "undeclared settings read:\n" + "\n".join(unknown)


def test_no_getattr_on_settings() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in python_files()
        for line in settings_getattrs(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not found, "getattr/hasattr on settings (declare a field instead):\n" + "\n".join(found)


def test_every_quantrac_variable_named_is_a_setting() -> None:
    fields = {f"QUANTRAC_{name.upper()}" for name in Settings.model_fields}
    unknown, seen = [], set()
    for path in [*python_files(), *deploy_files()]:
        if path == Path(__file__).resolve():
            continue  # its own examples of names that must not pass
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in ENV_NAME.findall(line):
                seen.add(name)
                if name not in fields | NOT_SETTINGS and not name.startswith(HARNESS):
                    unknown.append(f"{path.relative_to(ROOT)}:{n}: {name}")
    assert {"QUANTRAC_KAFKA_URL", "QUANTRAC_GATEWAY_HOST"} <= seen  # the scan sees the files
    assert not unknown, "QUANTRAC_* names that are no setting:\n" + "\n".join(unknown)


def test_the_walk_catches_what_it_is_for() -> None:
    """The checks would fail on the reads this test was written against."""
    code = ast.parse(
        'host = getattr(settings, "gateway_ftp_host", "127.0.0.1")\ntz = self.settings.timezone\n'
    )
    assert list(settings_getattrs(code)) == [1]
    assert [n for _, n in settings_reads(code) if n not in declared()] == ["timezone"]
    assert ENV_NAME.findall("QUANTRAC_TIMEZONE=x QUANTRAC_CONSOLE_LOGIN_* QUANTRAC_{n}") == [
        "QUANTRAC_TIMEZONE"
    ]

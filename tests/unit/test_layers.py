"""The packages form layers; an import may only run down the house (docs/architecture.md).

    core                       records, settings, metrics, topics, TLS, parameters, units, errors
    thresholds · stations      the law (pure) · who sends data; neither imports the other
    storage                    the database
    streams                    the worker and the process runtime
    reports · notify           regulator reports · notifications to people
    console
    bench · quantrac_demo       the benchmarks · the demo process tree
    quantrac_cli               the command line

Every import counts, also one inside a function: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Layer of each package or top-level module; a module may import only from lower layers,
#: or from its own package.
LAYER = {
    "core": 0,
    "thresholds": 1,
    "stations": 1,
    "storage": 2,
    "streams": 3,
    "reports": 4,
    "notify": 4,
    "console": 5,
    "bench": 6,
    "quantrac_demo": 6,
    "quantrac_cli": 7,
}


def _modules() -> list[Path]:
    found: list[Path] = []
    for name in LAYER:
        package, module = ROOT / name, ROOT / f"{name}.py"
        found += sorted(package.rglob("*.py")) if package.is_dir() else [module]
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def _owner(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_every_import_runs_down_the_layers() -> None:
    wrong: list[str] = []
    for path in _modules():
        me = _owner(path)
        for line, target in _imports(path):
            if target == me or target not in LAYER:
                continue
            if LAYER[target] >= LAYER[me]:
                rel = path.relative_to(ROOT)
                wrong.append(f"{rel}:{line} imports {target} (layer {LAYER[target]} ≥ {LAYER[me]})")
    assert not wrong, "imports running up or across the layers:\n" + "\n".join(wrong)


def test_every_package_has_a_layer() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages <= set(LAYER), f"give these a layer here and in docs: {packages - set(LAYER)}"


@pytest.mark.parametrize("text", ["import streams.app\n", "from console.app import x\n"])
def test_the_walk_sees_an_upward_import(tmp_path: Path, text: str) -> None:
    # the check itself can fail: an upward import written into a core-like module is found
    module = tmp_path / "m.py"
    module.write_text("def f():\n    " + text)
    assert [t for _, t in _imports(module)] == [text.split()[1].split(".")[0]]

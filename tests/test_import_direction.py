"""Dependencies point one way: device ← training ← converters ← benchmarks.

The daemon (`device/`) runs on a Pi without TensorFlow, so nothing there may import the training
side; training may use the device's own preprocessing and runtime (one implementation of each);
conversion builds on training; benchmarks measure everything. The demo and the dashboard are their
own packages beside the daemon. A static walk of every import (including those inside functions)
catches a wrong-way import on the day it is written, not when a Pi fails to start.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED: dict[str, set[str]] = {
    "device": {"device"},
    "dashboard": {"dashboard"},
    "training": {"device", "training"},
    "converters": {"device", "training", "converters"},
    "demo": {"device", "demo", "dashboard"},
    "review": {"device", "review"},
    "benchmarks": {"device", "training", "converters", "demo", "dashboard", "benchmarks"},
}
OURS = set(ALLOWED) | {"tests"}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def wrong_way_imports(root: Path) -> list[str]:
    problems = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, imported in imported_packages(path):
                if imported in OURS and imported not in allowed:
                    problems.append(f"{path.relative_to(root)}:{line} imports {imported}")
    return problems


def test_no_import_points_against_the_direction() -> None:
    assert wrong_way_imports(ROOT) == []


def test_the_check_finds_a_wrong_way_import(tmp_path: Path) -> None:
    for package in ALLOWED:
        (tmp_path / package).mkdir()
    (tmp_path / "training" / "task.py").write_text("def f():\n    from converters.quantize import convert\n")
    (tmp_path / "device" / "app.py").write_text("import training.train\nimport numpy\n")
    assert wrong_way_imports(tmp_path) == ["device/app.py:1 imports training",
                                           "training/task.py:2 imports converters"]

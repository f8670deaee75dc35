"""The house without back doors: no module reaches into another's private names, and every
module stays small enough to hold in one's head. (Layers and import circles are import-linter's
job: `lint-imports`, contracts in pyproject.toml.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("placement", "pricing", "profiles")
MAX_LINES = 550  # "no module over ~500 lines"
GENERATED_DATA = {"pricing/data/compile_cloud_snapshot.py"}  # a data compiler, run by hand


def project_modules() -> list[Path]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    return sorted(files + [p for p in (ROOT / "app.py",) if p.exists()])


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def private_imports(path: Path, me: str | None = None) -> list[str]:
    """`from other.module import _name` and `other_module._name` where other is ours."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = me or module_name(path)
    found = []
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            for alias in node.names:
                if node.module != me and alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"from {node.module} import {alias.name}")
                if not alias.name.startswith("_"):
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__")):
            target = aliases[node.value.id]
            if target != me:
                found.append(f"{target}.{node.attr}")
    return found


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_uses_another_modules_private_names(path):
    assert private_imports(path) == []


def test_no_module_is_too_long_to_read():
    long = {str(p.relative_to(ROOT)): n for p in project_modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
            and str(p.relative_to(ROOT)) not in GENERATED_DATA}
    assert long == {}


def test_the_checker_finds_a_private_import(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("from profiles.tuning import _secret\nimport profiles.profiler as pp\nx = pp._hidden\n")
    assert private_imports(sneaky, "placement.sneaky") == [
        "from profiles.tuning import _secret", "profiles.profiler._hidden"]

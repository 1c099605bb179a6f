"""The architecture as a test: methods never import studies or the run/book layer.

Methods packages are what a researcher imports into their own work; they know nothing about chapters,
sweeps or the book (DESIGN.md, "Layout"). The check reads every module's imports with ``ast`` (including
imports inside functions), so a lazy import cannot hide a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "repro"
METHODS = ("ood", "sharpness", "sam", "unlearning", "models", "data", "train", "plots", "core", "reference")
FORBIDDEN = ("repro.studies", "repro.launch", "repro.book", "repro.cli")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; the tree uses absolute imports only")
    return out


def _shown(f: Path) -> str:
    return str(f.relative_to(ROOT.parent)) if f.is_relative_to(ROOT.parent) else str(f)


def violations(package_dir: Path) -> list[str]:
    bad = []
    for f in sorted(package_dir.rglob("*.py")):
        for lineno, mod in imported_modules(f):
            if any(mod == p or mod.startswith(p + ".") for p in FORBIDDEN):
                bad.append(f"{_shown(f)}:{lineno} imports {mod}")
    return bad


@pytest.mark.parametrize("package", METHODS)
def test_methods_do_not_import_studies_or_the_run_layer(package):
    assert (ROOT / package).is_dir(), f"repro/{package} is missing"
    assert violations(ROOT / package) == []


def test_the_check_catches_a_forbidden_import(tmp_path):
    pkg = tmp_path / "ood"
    pkg.mkdir()
    (pkg / "m.py").write_text("def f():\n    from repro.studies.ch3_ninco import report\n    return report\n")
    found = violations(pkg)
    assert found and all(":2 imports repro.studies.ch3_ninco" in v for v in found)


def test_top_level_holds_only_the_layout():
    """repro/ holds packages plus the CLI and the two torchrun entry points, nothing chapter-specific."""
    modules = sorted(p.name for p in ROOT.glob("*.py"))
    assert modules == ["__init__.py", "cli.py", "train_ddp.py", "unlearn_dist.py"]
    for entry in ("train_ddp.py", "unlearn_dist.py"):
        body = [n for n in ast.parse((ROOT / entry).read_text()).body if not isinstance(n, ast.Expr)]
        assert len(body) <= 2, f"repro/{entry} must stay a thin entry point"

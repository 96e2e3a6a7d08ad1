"""domain/ depends on nothing but the standard library and eventsourcing."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
ALLOWED_THIRD_PARTY = {"eventsourcing"}


def imported_roots(tree: ast.AST) -> set[str]:
    """Top-level package of every import; relative imports count as `domain`."""
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            roots.add("domain" if node.level else (node.module or "").split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            if node.args and isinstance(node.args[0], ast.Constant):
                roots.add(str(node.args[0].value).split(".")[0])
    return roots


def forbidden(roots: set[str]) -> set[str]:
    return {r for r in roots if r not in sys.stdlib_module_names and r not in ALLOWED_THIRD_PARTY and r != "domain"}


MODULES = sorted(DOMAIN.rglob("*.py"))


def test_the_domain_package_has_modules() -> None:
    assert {m.name for m in MODULES} >= {"agreement.py", "application.py", "values.py", "errors.py"}


@pytest.mark.parametrize("module", MODULES, ids=[str(m.relative_to(DOMAIN)) for m in MODULES])
def test_domain_module_imports_only_the_standard_library_and_eventsourcing(module: Path) -> None:
    assert forbidden(imported_roots(ast.parse(module.read_text(), str(module)))) == set()


def test_the_import_check_catches_frameworks_and_upper_layers() -> None:
    source = "import fastapi\nfrom sqlalchemy.orm import Session\nfrom app import runtime\n" \
             "from projections.compliance import apply\nimport json\nfrom eventsourcing.domain import Aggregate\n" \
             "from .values import SLUG\n"
    assert forbidden(imported_roots(ast.parse(source))) == {"fastapi", "sqlalchemy", "app", "projections"}

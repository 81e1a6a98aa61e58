"""Rules of the code base that no linter checks: module docstrings, and tests that import helpers, not conftest."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PRODUCT = [path for top in ("accounts", "todos", "config") for path in (REPO / top).rglob("*.py")]
TESTS = list((REPO / "tests").rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


@pytest.mark.parametrize("path", TESTS, ids=lambda path: str(path.relative_to(REPO)))
def test_no_test_imports_from_conftest(path):
    imported = _imported_modules(path)
    assert not {module for module in imported if module.split(".")[-1] == "conftest"}, (
        "shared helpers live in tests/support/; conftest.py holds only fixtures and hooks"
    )


@pytest.mark.parametrize(
    "path", [p for p in PRODUCT if "migrations" not in p.parts], ids=lambda path: str(path.relative_to(REPO))
)
def test_every_product_module_starts_with_a_docstring(path):
    docstring = ast.get_docstring(ast.parse(path.read_text(), filename=str(path)))
    assert docstring and docstring.strip(), f"{path.relative_to(REPO)} has no module docstring"

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


# Only the sign-in pipeline may start a session: anywhere else, a new way of signing in could skip the
# second factor (Better Auth's two-factor hook matches a list of paths, and new methods slipped past it).
SESSION_STARTERS = {"start_device_session", "login", "start_browser_session", "start_api_session"}
MAY_START_SESSIONS = {
    REPO / "accounts" / "flows" / "signin.py",
    REPO / "accounts" / "flows" / "device_sessions.py",  # defines start_device_session
    REPO / "accounts" / "views.py",  # signed_in(): start_browser_session from a SignedIn
    REPO / "accounts" / "api" / "views" / "signin.py",  # signed_in_response(): the same for the API
}


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            function = node.func
            names.add(function.id if isinstance(function, ast.Name) else getattr(function, "attr", ""))
    return names


@pytest.mark.parametrize("path", PRODUCT, ids=lambda path: str(path.relative_to(REPO)))
def test_only_the_sign_in_pipeline_starts_sessions(path):
    if path in MAY_START_SESSIONS:
        return
    assert not _calls(path) & SESSION_STARTERS, (
        f"{path.relative_to(REPO)} starts a session itself: sign-ins go through flows/signin.finish_first_factor"
    )


def test_sessions_start_only_from_a_finished_sign_in():
    """start_browser_session and start_api_session take a SignedIn, never a bare user."""
    import inspect

    from accounts.flows import signin

    for starter in (signin.start_browser_session, signin.start_api_session):
        parameters = inspect.signature(starter).parameters
        assert "user" not in parameters
        assert parameters["sign_in"].annotation in {"SignedIn", signin.SignedIn}

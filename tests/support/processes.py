"""Python processes of this project started with a controlled environment (settings, manage.py commands)."""

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """Only PATH and HOME from this process's environment, plus ``extra``: nothing else leaks in."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), **extra}


def run_in_project(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """``python *args`` in the project root with ``env``; the result with its text output."""
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )

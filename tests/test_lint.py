"""The code's own rules, checked with the suite: ruff, mypy strict, and the import rule (import-linter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def test_imports_follow_the_layer_rule() -> None:
    """cli, api → evaluation → graph → nodes → core; ingest → core; nothing imports cli or api."""
    result = _run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_ruff_finds_nothing() -> None:
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.timeout(600)
def test_mypy_strict_finds_nothing() -> None:
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

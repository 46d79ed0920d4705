"""The house rules, enforced: import contracts (see .importlinter), ruff and mypy.

DESIGN.md asks for import-linter contracts run in the tests, and the SDK issue for ruff and mypy clean in
CI. Running them as tests means a violation fails the same command developers and CI already run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# A cold mypy over the whole tree takes over a minute of one core; on a machine that is busy with something
# else, more than the suite's 120 s per test. The subprocess has its own bound.
pytestmark = pytest.mark.timeout(660)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_import_contracts_are_kept() -> None:
    result = run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean() -> None:
    result = run(str(BIN / "ruff"), "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = run(str(BIN / "mypy"), "--no-incremental", "devservers_sdk", "operator/devservers_operator",
                 "cli/devservers_cli", "magics/devservers_magics", "ui/devservers_ui")
    assert result.returncode == 0, result.stdout + result.stderr

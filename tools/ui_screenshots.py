"""Regenerate the README's dashboard screenshots (docs/screenshots/*.png) from the browser tests themselves.

Run: ``.venv/bin/python tools/ui_screenshots.py``

The browser tests (tests/ui) save a screenshot at the moments the README shows when
``DEVSERVERS_UI_SCREENSHOTS`` names a folder; this runs exactly those tests, against a fresh local cluster
with the operator, in Debian's Chromium at 1280x800, so a picture can only show what a passing test saw.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "docs" / "screenshots"
EXPECTED = ("list", "create-form", "create-form-errors", "server-page")


def main() -> int:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for old in FOLDER.glob("*.png"):
        old.unlink()
    env = {**os.environ, "DEVSERVERS_UI_SCREENSHOTS": str(FOLDER)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/ui/test_dashboard_browser.py"], cwd=ROOT, env=env)
    missing = [name for name in EXPECTED if not (FOLDER / f"{name}.png").exists()]
    if result.returncode or missing:
        print(f"screenshots incomplete (tests exited {result.returncode}; missing: {', '.join(missing) or 'none'})",
              file=sys.stderr)
        return 1
    for name in EXPECTED:
        print(FOLDER / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

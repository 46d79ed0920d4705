"""The dashboard's browser tests' helpers: ``devctl ui`` as a real process, Debian's Chromium, screenshots.

The dashboard runs exactly as a user starts it (``python -m devservers_cli ui --no-browser``), against the
session's platform (cluster + operator), in the test's namespace; the test reads the URL it prints.
The browser is the ``chromium`` package's binary driven by Playwright; Playwright's own browser download
is never used (``executable_path``), so the tests need no network.

``DEVSERVERS_UI_SCREENSHOTS=DIR`` makes the tests save the README's screenshots into DIR
(``tools/ui-screenshots`` sets it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.platform_fixture import REPO

CHROMIUM = os.environ.get("DEVSERVERS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
URL_LINE = re.compile(r"Dashboard at (http://127\.0\.0\.1:(\d+)/\?token=([\w-]+))")


@dataclass
class RunningDashboard:
    """A ``devctl ui`` process: the URL it printed, and what it wrote to stderr so far."""

    url: str
    port: int
    token: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return "".join(self.output)


def start_dashboard(kubeconfig: str, *extra: str, timeout: float = 60.0) -> RunningDashboard:
    """Start ``devctl ui`` and wait for its URL; fail with what it printed if it does not come."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    paths = [str(REPO), str(REPO / "cli"), str(REPO / "ui"), str(REPO / "operator"), str(REPO / "magics")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    process = subprocess.Popen([sys.executable, "-m", "devservers_cli", "--kubeconfig", kubeconfig, "ui",
                                "--no-browser", "--port", "0", *extra], cwd=REPO, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output: list[str] = []
    found: list[re.Match[str]] = []
    announced = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = URL_LINE.search(line)
            if match and not found:
                found.append(match)
                announced.set()
        announced.set()

    threading.Thread(target=pump, daemon=True).start()
    if not announced.wait(timeout) or not found:
        process.kill()
        process.wait()
        pytest.fail(f"devctl ui printed no URL within {timeout}s; it printed:\n{''.join(output)}")
    match = found[0]
    return RunningDashboard(url=match[1], port=int(match[2]), token=match[3], process=process, output=output)


def stop_dashboard(dashboard: RunningDashboard) -> None:
    dashboard.process.terminate()
    try:
        dashboard.process.wait(15)
    except subprocess.TimeoutExpired:
        dashboard.process.kill()
        dashboard.process.wait()



def screenshot(page: Any, name: str) -> None:
    """Save ``name``.png for the README when ``DEVSERVERS_UI_SCREENSHOTS`` names a folder."""
    folder = os.environ.get("DEVSERVERS_UI_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)

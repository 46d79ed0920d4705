"""Fixtures for the dashboard's browser tests (see ``dashboard_support``): a ``devctl ui`` process in the
test's namespace with the platform running, and one headless Debian Chromium per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import CHROMIUM, CHROMIUM_ARGS, RunningDashboard, start_dashboard, stop_dashboard

from tests.platform_fixture import remove_devservers, this_python_first_on_path


@pytest.fixture(scope="session")
def pods_use_this_python() -> Iterator[None]:
    """Pods of the local cluster take PATH from the cluster process: this interpreter's bin first is the image
    with JupyterLab installed (as in tests/connect and tests/launch)."""
    with this_python_first_on_path():
        yield


@pytest.fixture
def ui_kubeconfig(platform: object, namespace_kubeconfig: str, pods_use_this_python: None) -> Iterator[str]:
    """The test namespace's kubeconfig with the platform running; its DevServers are removed afterwards."""
    yield namespace_kubeconfig
    remove_devservers(namespace_kubeconfig)


@pytest.fixture
def dashboard(ui_kubeconfig: str) -> Iterator[RunningDashboard]:
    running = start_dashboard(ui_kubeconfig)
    try:
        yield running
    finally:
        stop_dashboard(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Per module, not per session: Playwright's sync API keeps an asyncio loop running in the main thread
    # while it is open, so every asyncio.run() of a module shuffled in after the first browser test failed
    # ("cannot be called from a running event loop"), and another module's sync_playwright() refused to start.
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (tools/install-system-packages), "
                    f"or point DEVSERVERS_CHROMIUM at a Chromium binary")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()

"""``DevServerUI`` in JupyterLab, in Debian's Chromium driven by Playwright, against the platform.

What a user sees, not what Python holds: the list follows a ``devctl stop`` typed in a terminal without a
click; a create waiting for a GPU that this cluster has not got leaves the kernel free (another cell runs
meanwhile) and is cancelled from its own Cancel button; at 1280 px no button label is cut (every button's
``scrollWidth <= clientWidth``) and confirming a delete moves no column. Screenshots are saved in the test's
``tmp_path`` (``-s`` prints where).

Latencies are printed, not asserted (``-s`` shows them): tests on a shared machine wait with generous
bounds and fail only when something never happens.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk.client import DevServerClient
from devservers_sdk.localcluster.pytest_plugin import create_test_namespace, delete_test_namespace
from tests.magics.magic_support import READY_TIMEOUT
from tests.notebooks.test_notebooks import KERNEL_NAME, kernelspec_path
from tests.platform_fixture import Platform

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DEVSERVERS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEVCTL = str(Path(sys.executable).with_name("devctl"))
WIDGET_CELL = (
    "from devservers_magics import DevServerUI\n"
    "from devservers_sdk.client import DevServerClient\n"
    "ui = DevServerUI(DevServerClient(), countdown_interval=None)\n"
    "ui"
)
TIMEOUT_MS = 120_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Lab:
    def __init__(self, url: str, namespace: str, kubeconfig: str, root: Path) -> None:
        self.url, self.namespace, self.kubeconfig, self.root = url, namespace, kubeconfig, root


@pytest.fixture(scope="module")
def lab(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on loopback, its kernels this interpreter, pointed at a namespace of the module's own."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (tools/install-system-packages)")
    namespace = create_test_namespace(platform.kubeconfig, "widgets-browser")
    root = tmp_path_factory.mktemp("lab")
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": WIDGET_CELL},
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
             "source": "print('kernel free', 6 * 7)"},
        ],
        "metadata": {"kernelspec": {"name": KERNEL_NAME, "display_name": "devservers tests", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / "widgets.ipynb").write_text(json.dumps(notebook))
    token, port = secrets.token_hex(16), _free_port()
    env = {
        **os.environ,
        "KUBECONFIG": platform.kubeconfig,
        "DEVSERVERS_NAMESPACE": namespace,
        "JUPYTER_PATH": kernelspec_path(root / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "magics"), str(REPO)]),
    }
    env.pop("DEVSERVERS_OWNER", None)
    # No "get notified about Jupyter news?" toast over the widget.
    settings = root / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env["JUPYTERLAB_SETTINGS_DIR"] = str(root / "lab-settings")
    log = (root / "lab.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if os.geteuid() == 0 else [])],  # CI containers run as root
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(root / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.2)
        yield Lab(f"http://127.0.0.1:{port}/lab/tree/widgets.ipynb?token={token}", namespace, platform.kubeconfig, root)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        delete_test_namespace(platform.kubeconfig, namespace)


@pytest.fixture(scope="module")
def sdk(lab: Lab) -> Iterator[DevServerClient]:
    with DevServerClient(kubeconfig=lab.kubeconfig, namespace=lab.namespace) as client:
        yield client


@pytest.fixture(scope="module")
def page(lab: Lab, sdk: DevServerClient) -> Iterator[Any]:
    """The notebook open at 1280 px with the widget cell run, and a DevServer already running in its list."""
    from playwright.sync_api import sync_playwright

    sdk.create("browser-stop", flavor="cpu-small", time_to_live="1h", wait=True, timeout=READY_TIMEOUT)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 1000})
            tab.set_default_timeout(TIMEOUT_MS)
            try:
                tab.goto(lab.url)
                tab.locator(".jp-Notebook .jp-Cell").first.wait_for()
                _kernel_idle(tab)
                _run_cell(tab, 0)
                tab.locator(".widget-button", has_text="Create").wait_for()
                tab.locator('div[title="browser-stop"]').wait_for()
            except Exception:
                tab.screenshot(path=str(lab.root / "failed-setup.png"), full_page=True)
                print(f"screenshot of the failed set-up: {lab.root / 'failed-setup.png'}")
                raise
            yield tab
        finally:
            browser.close()


def _run_cell(tab: Any, index: int) -> None:
    """Run cell ``index`` as a user does (click into it, Shift+Enter) and wait until the kernel took it."""
    cell = tab.locator(".jp-Notebook .jp-Cell").nth(index)
    prompt = cell.locator(".jp-InputPrompt")
    for _ in range(20):  # a keystroke sent while the kernel is still connecting is lost: press again
        cell.locator(".jp-InputArea-editor").click()
        tab.keyboard.press("Shift+Enter")
        try:
            tab.wait_for_function("(p) => /\\[(\\*|\\d+)\\]/.test(p.innerText)", arg=prompt.element_handle(),
                                  timeout=3000)
            return
        except Exception:
            continue
    pytest.fail(f"cell {index} never ran")


def _kernel_idle(tab: Any) -> None:
    tab.wait_for_function(
        "() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
        " return s && s.getAttribute('data-status') === 'idle'; }",
        timeout=TIMEOUT_MS,
    )


def _row_has(tab: Any, name: str, text: str, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until the list's row of ``name`` shows a cell or button reading ``text``."""
    tab.wait_for_function(
        """([name, text]) => {
            const cell = document.querySelector(`div[title="${name}"]`);
            const row = cell && cell.closest('.widget-hbox');
            if (!row) return false;
            return [...row.querySelectorAll('div[title], button')].some(
                e => (e.getAttribute('title') || e.innerText).trim() === text);
        }""",
        arg=[name, text],
        timeout=timeout_ms,
    )


def _cut_buttons(tab: Any) -> list[str]:
    """Visible buttons whose label does not fit (ellipsis), or that stick out of their output (clipped)."""
    return list(
        tab.evaluate(
            """() => [...document.querySelectorAll('.jp-OutputArea button')]
                .filter(b => b.offsetParent !== null)
                .flatMap(b => {
                    const box = b.getBoundingClientRect();
                    const area = b.closest('.jp-OutputArea-output').getBoundingClientRect();
                    const label = b.innerText.trim() || b.title;
                    const cut = [];
                    if (b.scrollWidth > b.clientWidth) cut.push(`${label}: label ${b.scrollWidth} > ${b.clientWidth}`);
                    if (box.right > area.right + 0.5) cut.push(`${label}: right edge ${box.right} > ${area.right}`);
                    return cut;
                })"""
        )
    )


def test_a_devctl_stop_elsewhere_shows_stopped_without_a_click(page: Any, lab: Lab, sdk: DevServerClient) -> None:
    _row_has(page, "browser-stop", "Running")
    env = {**os.environ, "KUBECONFIG": lab.kubeconfig}
    subprocess.run([DEVCTL, "-n", lab.namespace, "stop", "browser-stop"], check=True, env=env, capture_output=True,
                   timeout=60)
    stopped_at = time.monotonic()
    _row_has(page, "browser-stop", "Start")
    offered = time.monotonic() - stopped_at
    reported_at: list[float] = []

    def operator_reported() -> None:  # when the cluster itself says Stopped (the operator's part)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and sdk.get("browser-stop").status.phase != "Stopped":
            time.sleep(0.02)
        reported_at.append(time.monotonic())

    watcher = threading.Thread(target=operator_reported, daemon=True)
    watcher.start()
    _row_has(page, "browser-stop", "Stopped")
    shown_at = time.monotonic()
    watcher.join(READY_TIMEOUT)
    lag = max(0.0, shown_at - reported_at[0]) if reported_at else float("nan")
    print(f"devctl stop -> Start offered in the widget: {offered:.2f}s; -> Stopped shown: {shown_at - stopped_at:.2f}s "
          f"(the operator's reconcile included); cluster says Stopped -> widget shows it: {lag:.2f}s "
          f"(target 2 s; polled every 20 ms)")


def test_a_waiting_gpu_create_leaves_the_kernel_free_and_cancel_stops_it(
    page: Any, sdk: DevServerClient, tmp_path: Path
) -> None:
    form = page.locator(".widget-vbox", has=page.locator(".widget-button", has_text="Create")).last
    page.locator(".widget-text input").first.fill("browser-gpu")
    flavor = page.locator(".widget-dropdown select").first
    flavor.select_option(value=next(
        option.get_attribute("value") for option in flavor.locator("option").all()
        if option.inner_text().startswith("gpu-small:")))
    page.locator(".widget-button", has_text="Create").click()
    cancel = page.locator(".widget-button", has_text="Cancel").first
    cancel.wait_for(state="visible")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-OutputArea .widget-html')]"
        ".some(e => e.innerText.includes('browser-gpu: Pending'))",
        timeout=TIMEOUT_MS,
    )
    # The kernel is free while the create waits: the next cell runs and prints.
    _run_cell(page, 1)
    page.locator(".jp-OutputArea-output", has_text="kernel free 42").wait_for()
    page.screenshot(path=str(tmp_path / "waiting-for-gpu.png"), full_page=True)
    clicked = time.monotonic()
    cancel.click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-OutputArea .widget-html')]"
        ".some(e => e.innerText.includes('Stopped waiting for browser-gpu'))",
        timeout=TIMEOUT_MS,
    )
    cancelled = time.monotonic() - clicked
    _kernel_idle(page)
    print(f"Cancel -> 'Stopped waiting' shown, kernel idle: {cancelled:.2f}s (target 2 s); "
          f"screenshot {tmp_path / 'waiting-for-gpu.png'}")
    assert not cancel.is_visible()
    assert sdk.get("browser-gpu").status.phase == "Pending"  # cancelled the wait, not the DevServer
    _row_has(page, "browser-gpu", "Pending")
    assert form is not None


def test_no_button_label_is_cut_at_1280_px_and_confirming_a_delete_moves_nothing(
    page: Any, sdk: DevServerClient, tmp_path: Path
) -> None:
    # The row has settled on the action its server's state calls for: Start once the stop test has run, Stop if
    # the shuffle put this test first.
    stopped = sdk.get("browser-stop").status.phase in ("Stopped", "Stopping")
    _row_has(page, "browser-stop", "Start" if stopped else "Stop")
    page.screenshot(path=str(tmp_path / "widget-1280.png"), full_page=True)
    assert _cut_buttons(page) == []
    name_cell = page.locator('div[title="browser-stop"]')
    row = page.locator(".widget-hbox", has=name_cell).last
    before = {key: page.locator(f'div[title="{key}"]').first.bounding_box() for key in ("browser-stop",)}
    row_box = row.bounding_box()
    row.locator('button[title="Delete"]').click()
    row.locator('button[title="Yes, delete"]').wait_for(state="visible")
    page.screenshot(path=str(tmp_path / "delete-confirmation-1280.png"), full_page=True)
    assert _cut_buttons(page) == []
    assert row.bounding_box() == row_box, "confirming a delete reflowed the row"
    assert page.locator('div[title="browser-stop"]').first.bounding_box() == before["browser-stop"]
    row.locator('button[title="Cancel"]').click()
    row.locator('button[title="Delete"]').wait_for(state="visible")
    print(f"screenshots: {tmp_path}")

"""The dashboard in a real browser, against the cluster and the operator: create through the form, watch it
run, extend, stop, start, change its flavor, read its logs, delete it; a bad form sends nothing; the list
is live and filters by namespace and phase. Every wait is on a condition of the page, never a sleep."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_support import RunningDashboard, screenshot, start_dashboard, stop_dashboard
from playwright.sync_api import expect

from devservers_sdk import DevServerClient
from devservers_sdk.localcluster.pytest_plugin import create_test_namespace, delete_test_namespace, wait_for

RUNNING_TIMEOUT = 180_000  # ms: on a loaded 2-core machine a pod can take a while
PHASE_TIMEOUT = 120_000


def unique(prefix: str) -> str:
    # Pods of every namespace run as processes of this one machine: a unique name finds ours among them.
    return f"{prefix}-{secrets.token_hex(3)}"


def write_to_container_log(client: DevServerClient, name: str, line: str) -> None:
    """Make the DevServer's main process print ``line``: its stdout is what the pod's log is made of.

    The keep-alive shell prints nothing by itself; a command run with ``exec`` has its own stdout, so it
    finds the pod's main process (same HOSTNAME, the keep-alive loop's command line) and writes to that
    process's stdout. ``[w]hile`` keeps the search from matching its own command line.
    """
    script = (f'for p in /proc/[0-9]*; do '
              f'tr "\\0" "\\n" < $p/environ 2>/dev/null | grep -qx "HOSTNAME=$HOSTNAME" || continue; '
              f'tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q "[w]hile :; do sleep" || continue; '
              f'echo {line} > $p/fd/1 && echo written; done')
    result = client.exec(name, ["/bin/sh", "-c", script])
    assert "written" in result.stdout, f"found no main process to write to: {result}"


def test_create_run_extend_stop_start_flavor_logs_delete(dashboard: RunningDashboard, ui_kubeconfig: str,
                                                         page: Any, browser: Any) -> None:
    name = unique("web")
    page.goto(dashboard.url)
    expect(page.get_by_text("live", exact=True)).to_be_visible()
    page.get_by_role("link", name="New DevServer").click()

    # The create form: every flavor with its size and description; home volume on by default.
    flavor = page.get_by_label("Flavor", exact=True)
    options = flavor.locator("option").all_inner_texts()
    assert any(text.startswith("cpu-small: 1 CPU, 2Gi memory, 0 GPU (1 CPU, 2Gi") for text in options), options
    assert any(re.match(r"gpu-\w+: .*, [1-9] GPU", text) for text in options), options
    expect(page.get_by_label("Persistent home")).to_be_checked()
    page.get_by_label("Name").fill(name)
    flavor.select_option("cpu-small")
    page.get_by_label("Time to live").fill("4h")
    page.get_by_label("Home size").fill("1Gi")
    screenshot(page, "create-form")
    page.get_by_role("button", name="Create").click()

    # The server's page, which must follow the DevServer to Running by itself.
    page.wait_for_url(re.compile(rf"/servers/[^/]+/{name}$"))
    page.evaluate("window.sameDocument = true")
    phase = page.locator("#phase")
    expect(phase).to_have_text("Running", timeout=RUNNING_TIMEOUT)
    assert page.evaluate("window.sameDocument") is True, "the page reloaded instead of updating live"
    expect(page.locator("#pods")).to_contain_text(f"{name}-0")
    expect(page.locator("#spec")).to_contain_text("1Gi")
    expect(page.locator("#conditions")).to_be_visible()
    expect(page.locator("#shell-command")).to_have_text(re.compile(rf"^devctl shell {name}$"))
    expect(page.locator("#ssh-command")).to_have_text(f"ssh {name}.devserver")
    expect(page.locator("#jupyter-command")).to_have_text(f"devctl jupyter {name}")

    # The list, in another tab, shows it Running too.
    listing = page.context.new_page()
    listing.goto(dashboard.base + "/")
    row = listing.locator(f'tr[data-key$="/{name}"]')
    expect(row).to_contain_text("Running")
    expect(row).to_contain_text("cpu-small")
    expect(row).to_contain_text("1/1")

    # Extend: the countdown moves from about 4h to about 6h.
    countdown = page.locator("#countdown")
    expect(countdown).to_have_text(re.compile(r"^[34]h \d+m \d+s$"))
    before = countdown.get_attribute("data-expires-at")
    page.get_by_label("Extend by").fill("soon")
    page.get_by_role("button", name="Extend").click()
    expect(page.locator("#action-state")).to_contain_text('invalid duration "soon"')
    assert countdown.get_attribute("data-expires-at") == before
    page.get_by_label("Extend by").fill("2h")
    page.get_by_role("button", name="Extend").click()
    expect(countdown).to_have_text(re.compile(r"^[56]h \d+m \d+s$"), timeout=PHASE_TIMEOUT)
    assert countdown.get_attribute("data-expires-at") != before
    expect(page.locator("#action-state")).to_contain_text("done")

    # Logs: what the main process prints, then, following, what it prints next.
    with DevServerClient(kubeconfig=ui_kubeconfig) as client:
        write_to_container_log(client, name, "first-line-from-the-devserver")
        expect(page.get_by_label("Follow")).to_be_checked()
        page.get_by_role("button", name="Show logs").click()
        logs = page.locator("#logs")
        expect(logs).to_contain_text("first-line-from-the-devserver")
        write_to_container_log(client, name, "second-line-while-following")
        expect(logs).to_contain_text("second-line-while-following")
    screenshot(page, "server-page")
    page.set_viewport_size({"width": 390, "height": 800})
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the server's page is {overflow}px wider than a 390px window"
    page.set_viewport_size({"width": 1280, "height": 800})

    # JupyterLab: started in the pod and forwarded by the dashboard; the link opens the lab.
    page.get_by_role("button", name="Open JupyterLab").click()
    link = page.locator("#jupyter-link")
    expect(link).to_be_visible(timeout=RUNNING_TIMEOUT)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/lab\?token=\w+", link.get_attribute("href") or ""), \
        link.get_attribute("href")
    with page.context.expect_page() as opened:
        link.click()
    lab = opened.value
    expect(lab).to_have_title(re.compile("JupyterLab"), timeout=PHASE_TIMEOUT)
    lab.close()
    with DevServerClient(kubeconfig=ui_kubeconfig) as client:
        assert client.jupyter_stop(name)

    # Stop, change the flavor while stopped, start again.
    page.get_by_role("button", name="Stop").click()
    expect(phase).to_have_text("Stopped", timeout=PHASE_TIMEOUT)
    expect(row).to_contain_text("Stopped")
    page.get_by_label("Flavor").select_option("cpu-medium")
    page.get_by_role("button", name="Change flavor").click()
    expect(page.locator("#spec")).to_contain_text("cpu-medium", timeout=PHASE_TIMEOUT)
    expect(row).to_contain_text("cpu-medium")
    page.get_by_label("Flavor").select_option("cpu-small")
    page.get_by_role("button", name="Change flavor").click()
    expect(page.locator("#spec")).to_contain_text("cpu-small", timeout=PHASE_TIMEOUT)
    page.get_by_role("button", name="Start").click()
    expect(phase).to_have_text("Running", timeout=RUNNING_TIMEOUT)

    # Delete asks first; Cancel keeps it, the confirmation deletes it.
    page.get_by_role("button", name="Delete…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("#action-state")).to_have_text("Not deleted.")
    page.get_by_role("button", name="Delete…").click()
    dialog.get_by_role("button", name=f"Delete {name}").click()
    expect(row).to_have_count(0, timeout=PHASE_TIMEOUT)
    expect(phase).to_have_text("Deleted", timeout=PHASE_TIMEOUT)
    with DevServerClient(kubeconfig=ui_kubeconfig) as client:
        wait_for(lambda: name not in [s.name for s in client.list()], timeout=60, message=f"{name} deleted")


def test_a_bad_form_shows_each_fields_error_and_sends_nothing(dashboard: RunningDashboard, ui_kubeconfig: str,
                                                              page: Any) -> None:
    page.goto(dashboard.url)
    page.goto(dashboard.base + "/new")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)

    page.get_by_label("Name").fill("Bad_Name")
    page.get_by_label("Time to live").fill("8")
    page.get_by_label("Home size").fill("lots")
    page.get_by_label("A torchrun group of pods").check()
    page.get_by_label("World size (pods)").fill("0")
    page.get_by_label("NCCL settings").fill("LD_PRELOAD=/tmp/x.so")
    page.get_by_role("button", name="Create").click()

    expect(page.locator("#name-error")).to_contain_text('DevServer name "Bad_Name" is invalid')
    expect(page.locator("#timeToLive-error")).to_contain_text('add a unit, e.g. 8s or 8m')
    expect(page.locator("#homeSize-error")).to_be_visible()
    expect(page.locator("#worldSize-error")).to_contain_text("greater than or equal to 1")
    expect(page.locator("#ncclSettings-error")).to_contain_text("NCCL_")
    expect(page.locator("#create-state")).to_have_text("Fix the fields marked above; nothing was sent.")
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name")).to_be_focused()
    screenshot(page, "create-form-errors")

    # Fixing a field clears its error as the user types.
    page.get_by_label("Time to live").fill("8h")
    expect(page.locator("#timeToLive-error")).to_be_hidden()
    expect(page.locator("#name-error")).to_be_visible()

    assert sent and all(url.endswith("/api/validate") for url in sent), sent
    with DevServerClient(kubeconfig=ui_kubeconfig) as client:
        assert client.list() == []


@pytest.fixture
def second_namespace(cluster: Any) -> Iterator[str]:
    name = create_test_namespace(cluster.kubeconfig, "ui-other")
    try:
        yield name
    finally:
        delete_test_namespace(cluster.kubeconfig, name)


def test_the_list_is_live_and_filters_by_namespace_and_phase(ui_kubeconfig: str, second_namespace: str,
                                                             page: Any) -> None:
    with DevServerClient(kubeconfig=ui_kubeconfig) as mine, \
            DevServerClient(kubeconfig=ui_kubeconfig, namespace=second_namespace) as other:
        # GPU flavors stay Pending on the local node (it has no GPUs); stopped ones cost nothing.
        waiting, elsewhere = unique("gpu"), unique("away")
        mine.create(waiting, flavor="gpu-small", time_to_live="1h")
        other.create(elsewhere, flavor="cpu-small", time_to_live="1h")
        other.stop(elsewhere, wait=True, timeout=120)
        running = start_dashboard(ui_kubeconfig, "--all-namespaces")
        try:
            page.goto(running.url)
            expect(page.get_by_text("live", exact=True)).to_be_visible()
            rows = page.locator("#servers tbody tr:visible")
            mine_row = page.locator(f'tr[data-key="{mine.namespace}/{waiting}"]')
            other_row = page.locator(f'tr[data-key="{second_namespace}/{elsewhere}"]')
            expect(mine_row).to_contain_text("Pending")
            expect(mine_row).to_contain_text("gpu-small")
            expect(other_row).to_contain_text("Stopped")
            screenshot(page, "list")

            page.get_by_label("Namespace").select_option(second_namespace)
            expect(other_row).to_be_visible()
            expect(mine_row).to_be_hidden()
            page.get_by_label("Namespace").select_option("")
            page.get_by_label("Phase").select_option("Pending")
            expect(mine_row).to_be_visible()
            expect(other_row).to_be_hidden()
            assert all(row.get_attribute("data-phase") == "Pending" for row in rows.all())

            # Live: a DevServer created or deleted elsewhere appears and goes without a reload.
            page.evaluate("window.sameDocument = true")
            page.get_by_label("Phase").select_option("")
            late = unique("late")
            mine.create(late, flavor="gpu-small", time_to_live="1h")
            late_row = page.locator(f'tr[data-key="{mine.namespace}/{late}"]')
            expect(late_row).to_be_visible()
            mine.delete(late)
            expect(late_row).to_have_count(0)
            other.delete(elsewhere)
            expect(other_row).to_have_count(0)
            assert page.evaluate("window.sameDocument") is True
        finally:
            stop_dashboard(running)


def test_keyboard_labels_and_a_narrow_window(dashboard: RunningDashboard, ui_kubeconfig: str, page: Any) -> None:
    page.goto(dashboard.url)
    page.goto(dashboard.base + "/new")
    # Every control has a label people and screen readers can read.
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id || e.name)""")
    assert unlabelled == [], unlabelled

    # The form works from the keyboard alone: Tab to a field, type, Enter submits and the error is announced.
    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_label("Name").focus()
    page.keyboard.type("Not Valid")
    page.keyboard.press("Enter")
    expect(page.locator("#name-error")).to_be_visible()
    expect(page.locator("#name-error")).to_have_attribute("role", "alert")
    expect(page.get_by_label("Name")).to_be_focused()
    with DevServerClient(kubeconfig=ui_kubeconfig) as client:
        assert client.list() == []

    # A narrow window: nothing pushes the page sideways (wide tables scroll inside their own box).
    for path in ("/new", "/"):
        page.set_viewport_size({"width": 390, "height": 800})
        page.goto(dashboard.base + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a 390px window"
    expect(page.get_by_label("Phase")).to_be_visible()

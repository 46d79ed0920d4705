"""Benchmark of the dashboard (``devctl ui``) with many DevServers, in Debian's Chromium.

Run: ``.venv/bin/python bench/ui.py [--servers 200] [--loads 10] [--changes 20]``

* **First paint of the list**: a fresh tab opens ``/`` with N DevServers; the figure is the browser's own
  ``first-contentful-paint`` (from the start of navigation), and the page must then hold all N rows. The
  first load after the dashboard started is shown apart from the median of the later ones.
* **A status change shown in the browser**: this script writes a DevServer's status through the API
  server's status subresource, as the operator does, with a new message; the page records (a
  MutationObserver) when that row shows it. The figure is from just before the write to the moment the
  row changed: API server -> the dashboard's one watch -> server-sent event -> the DOM.

Targets (issue 18): first paint < 1 s; status change shown < 1 s.

The local cluster (the emulator, no operator: the script plays its part), the dashboard and the browser
each run in their own process, so nothing shares a GIL with what is measured.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
CHROMIUM = os.environ.get("DEVSERVERS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OBSERVER = """([key, marker]) => { window.__shown = new Promise((resolve) => {
  const seen = () => {
    const row = document.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
    return row && row.textContent.includes(marker);
  };
  if (seen()) { resolve(performance.timeOrigin + performance.now()); return; }
  const observer = new MutationObserver(() => {
    if (seen()) { observer.disconnect(); resolve(performance.timeOrigin + performance.now()); }
  });
  observer.observe(document.querySelector("#servers tbody"), {childList: true, subtree: true, characterData: true});
}); return true; }"""


def start_cluster(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    kubeconfig = f"{tmp}/kubeconfig"
    cluster = subprocess.Popen([sys.executable, "-m", "devservers_sdk.localcluster", "serve", "--kubeconfig",
                                kubeconfig], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not Path(kubeconfig).exists():
        if time.monotonic() > deadline or cluster.poll() is not None:
            raise SystemExit("the local cluster did not start")
        time.sleep(0.1)
    subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "apply", "-f", str(ROOT / "crds")], check=True,
                   stdout=subprocess.DEVNULL)
    from devservers_sdk.localcluster.pytest_plugin import wait_established

    wait_established(kubeconfig, "devservers.devservers.io", "devserverflavors.devservers.io")
    subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "apply", "-f", str(ROOT / "examples" / "flavors")],
                   check=True, stdout=subprocess.DEVNULL)
    return cluster, kubeconfig


def start_dashboard(kubeconfig: str) -> tuple[subprocess.Popen[str], str]:
    dashboard = subprocess.Popen([sys.executable, "-m", "devservers_cli", "--kubeconfig", kubeconfig, "ui",
                                  "--no-browser"], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert dashboard.stdout is not None
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.extend(
        match[0] for match in [re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", dashboard.stdout.readline())]
        if match), daemon=True)
    reader.start()
    reader.join(60)
    if not found:
        dashboard.kill()
        raise SystemExit("devctl ui printed no URL")
    return dashboard, found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--loads", type=int, default=10, help="fresh tabs opening the list")
    parser.add_argument("--changes", type=int, default=20, help="status changes timed")
    options = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from devservers_sdk.client import DevServerClient
    from devservers_sdk.kube import DEVSERVERS, Kube
    from devservers_sdk.settings import load_kubeconfig

    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        cluster, kubeconfig = start_cluster(tmp)
        dashboard = None
        try:
            client = DevServerClient(kubeconfig=kubeconfig)
            names = [f"dev-{index:04d}" for index in range(options.servers)]
            for name in names:
                client.create(name, flavor="cpu-small", time_to_live="8h")
            kube = Kube(load_kubeconfig(kubeconfig))
            for name in names:
                kube.patch(DEVSERVERS, name, {"status": {"phase": "Running", "readyReplicas": 1, "replicas": 1,
                                                         "message": "1/1 pods ready"}},
                           namespace=client.namespace, subresource="status")
            dashboard, url = start_dashboard(kubeconfig)
            base = url.split("/?", 1)[0]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                paints: list[float] = []
                for load in range(options.loads + 1):
                    page = context.new_page()
                    page.goto(url if load == 0 else base + "/")
                    page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0")
                    paint = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime")
                    rows = page.locator("#servers tbody tr").count()
                    if rows != options.servers:
                        raise SystemExit(f"the list showed {rows} rows, not {options.servers}")
                    paints.append(paint / 1000)
                    if load < options.loads:
                        page.close()
                page.wait_for_selector("#live-state.on")
                latencies: list[float] = []
                for change in range(options.changes):
                    name = names[(change * 37) % len(names)]
                    marker = f"bench change {change}"
                    page.evaluate(OBSERVER, [f"{client.namespace}/{name}", marker])
                    written = time.time() * 1000
                    kube.patch(DEVSERVERS, name, {"status": {"message": marker}}, namespace=client.namespace,
                               subresource="status")
                    shown = page.evaluate("window.__shown")
                    latencies.append((shown - written) / 1000)
                browser.close()
            kube.close()
            client.close()
        finally:
            if dashboard is not None:
                dashboard.terminate()
                dashboard.wait(15)
            cluster.terminate()
            cluster.wait(30)

    later = paints[1:] or paints
    quantile = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
    rows = [
        (f"first paint of the list, {options.servers} DevServers, first load (token redirect)", paints[0], 1.0),
        (f"first paint of the list, {options.servers} DevServers, median of {len(later)} fresh tabs",
         statistics.median(later), 1.0),
        (f"status change on the API server shown in the browser, median of {len(latencies)}",
         statistics.median(latencies), 1.0),
        ("status change shown in the browser, p95", quantile, 1.0),
    ]
    width = max(len(label) for label, _, _ in rows)
    print(f"{'figure':<{width}}  {'measured':>9}  target")
    for label, value, target in rows:
        print(f"{label:<{width}}  {value * 1000:7.0f} ms  < {target * 1000:.0f} ms "
              f"{'ok' if value < target else 'MISSED'}")


if __name__ == "__main__":
    main()

"""Benchmark of the notebook front end: ``%load_ext devservers_magics``, and how soon remote output shows.

Run: ``.venv/bin/python bench/magics.py [--repeat 7] [--prints 20]``

1. ``%load_ext devservers_magics`` in a fresh interpreter that already runs IPython (what a kernel is),
   ``--repeat`` times: the extension must stay offline and import nothing heavy. Target < 0.3 s.
2. On a local cluster with the operator (each in its own process, started here), a DevServer, and a real
   IPython shell: ``%%devserver run`` of a cell that prints ``time.time()`` every 0.2 s. Each line's delay is
   the moment it reached the cell's ``sys.stdout`` minus the stamp it carries (the "pod" is a process on this
   host, so both clocks are the same clock). Target: first output < 0.5 s after the remote print.
   The same cell is then run in a real Jupyter kernel and timed at the client, after iopub.
   Also shown: the time from starting the cell to its first output (connecting, sending the cell, starting
   Python remotely), and the wall time of an empty cell.

Figures are medians with the worst case beside them: shared machines are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "magics")]

from devservers_sdk.localcluster.pytest_plugin import wait_established  # noqa: E402

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
NAMESPACE = "bench-magics"

LOAD = """
import json, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
start = time.perf_counter()
shell.run_line_magic("load_ext", "devservers_magics")
print(json.dumps(time.perf_counter() - start))
"""


def load_times(repeat: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "magics"), str(ROOT)])}
    return [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", LOAD], capture_output=True, text=True, check=True, env=env, cwd=ROOT
            ).stdout
        )
        for _ in range(repeat)
    ]


def start_platform(directory: Path) -> tuple[list[subprocess.Popen[bytes]], str]:
    kubeconfig = directory / "kubeconfig"
    cluster = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devservers_sdk.localcluster",
            "serve",
            "--kubeconfig",
            str(kubeconfig),
            "--state-dir",
            str(directory / "state"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not kubeconfig.exists():
        if time.monotonic() > deadline:
            raise SystemExit("the local cluster did not start within 30s")
        time.sleep(0.05)
    run = [KUBECTL, "--kubeconfig", str(kubeconfig)]
    subprocess.run([*run, "apply", "-f", str(ROOT / "crds")], check=True, capture_output=True)
    wait_established(str(kubeconfig), "devservers.devservers.io", "devserverflavors.devservers.io", timeout=30)
    subprocess.run([*run, "apply", "-f", str(ROOT / "examples" / "flavors")], check=True, capture_output=True)
    namespace = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    subprocess.run([*run, "apply", "-f", "-"], input=namespace.encode(), check=True, capture_output=True)
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PYTHONPATH": str(ROOT / "operator"),
        "DEVSERVERS_LIVENESS": "",
    }
    operator = subprocess.Popen(
        [sys.executable, "-m", "devservers_operator"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return [operator, cluster], str(kubeconfig)


class Stamped(io.TextIOBase):
    """The cell's stdout: keeps each write with the wall-clock time it arrived."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.writes.append((time.time(), text))
        return len(text)


def remote_print_delays(kubeconfig: str, prints: int) -> tuple[list[float], float, float, float]:
    from IPython.testing.globalipapp import start_ipython

    from devservers_sdk.client import DevServerClient

    with DevServerClient(kubeconfig=kubeconfig, namespace=NAMESPACE) as client:
        client.create("bench", flavor="cpu-small", time_to_live="1h", wait=True, timeout=120)
    shell = start_ipython()
    shell.run_line_magic("load_ext", "devservers_magics")
    shell.run_line_magic("config", f"DevServerMagics.kubeconfig = {kubeconfig!r}")
    shell.run_line_magic("config", f"DevServerMagics.namespace = {NAMESPACE!r}")
    cell = f"import time\nfor i in range({prints}):\n    print(repr(time.time()))\n    time.sleep(0.2)\n"
    shell.run_cell_magic("devserver", "run bench", "pass\n")  # warm: connections, kubernetes import
    out = Stamped()
    started = time.time()
    with contextlib.redirect_stdout(out):
        shell.run_cell_magic("devserver", "run bench", cell)
    delays, first_arrival, seen = [], None, ""
    for arrived, text in out.writes:
        seen += text
        *lines, seen = seen.split("\n")
        for line in lines:
            delays.append(arrived - float(line))
            first_arrival = arrived if first_arrival is None else first_arrival
    assert len(delays) == prints, (len(delays), out.writes[:3])
    empty = time.perf_counter()
    shell.run_cell_magic("devserver", "run bench", "pass\n")
    empty_cell = time.perf_counter() - empty
    return delays, (first_arrival or started) - started, empty_cell, delays[0]


def kernel_print_delays(kubeconfig: str, prints: int) -> list[float]:
    """The same cell in a real Jupyter kernel: delay until each line reaches the client over iopub."""
    from jupyter_client.manager import start_new_kernel

    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "DEVSERVERS_NAMESPACE": NAMESPACE,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "magics"), str(ROOT)]),
    }
    manager, kernel = start_new_kernel(kernel_name="python3", env=env, cwd=str(ROOT))
    try:

        def execute(code: str) -> list[tuple[float, str]]:
            message_id = kernel.execute(code)
            streamed: list[tuple[float, str]] = []
            while True:
                message = kernel.get_iopub_msg(timeout=120)
                if message["parent_header"].get("msg_id") != message_id:
                    continue
                kind = message["msg_type"]
                if kind == "stream" and message["content"]["name"] == "stdout":
                    streamed.append((time.time(), message["content"]["text"]))
                elif kind == "error":
                    raise RuntimeError(message["content"]["evalue"])
                elif kind == "status" and message["content"]["execution_state"] == "idle":
                    return streamed

        execute("%load_ext devservers_magics")
        execute("%%devserver run bench\npass\n")
        cell = (
            f"%%devserver run bench\nimport time\nfor i in range({prints}):\n    print(repr(time.time()))\n"
            f"    time.sleep(0.2)\n"
        )
        delays: list[float] = []
        seen = ""
        for arrived, text in execute(cell):
            seen += text
            *lines, seen = seen.split("\n")
            delays.extend(arrived - float(line) for line in lines)
        return delays
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="fresh interpreters for the load time")
    parser.add_argument("--prints", type=int, default=20, help="remote prints to time")
    args = parser.parse_args()

    loads = load_times(args.repeat)
    print(
        f"%load_ext devservers_magics          median {statistics.median(loads) * 1000:7.1f} ms   "
        f"worst {max(loads) * 1000:7.1f} ms   (target < 300 ms)"
    )

    with tempfile.TemporaryDirectory(prefix="bench-magics-") as directory:
        processes, kubeconfig = start_platform(Path(directory))
        try:
            delays, first_output, empty_cell, first_delay = remote_print_delays(kubeconfig, args.prints)
            kernel_delays = kernel_print_delays(kubeconfig, args.prints)
        finally:
            for process in processes:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(30)
    print(f"remote print -> cell output (first)  {first_delay * 1000:7.1f} ms   (target < 500 ms)")
    print(
        f"remote print -> cell output (all)    median {statistics.median(delays) * 1000:7.1f} ms   "
        f"worst {max(delays) * 1000:7.1f} ms   ({len(delays)} prints, 0.2 s apart)"
    )
    print(
        f"... through a Jupyter kernel (iopub) first {kernel_delays[0] * 1000:7.1f} ms   median "
        f"{statistics.median(kernel_delays) * 1000:.1f} ms   worst {max(kernel_delays) * 1000:.1f} ms"
    )
    print(
        f"cell start -> first output           {first_output * 1000:7.1f} ms   "
        "(exec set-up + remote Python start)"
    )
    print(f"%%devserver run of an empty cell     {empty_cell * 1000:7.1f} ms")


if __name__ == "__main__":
    main()

"""Benchmark of devctl beside kubectl, on a local cluster started with ``devctl local up``.

Run: ``.venv/bin/python bench/cli.py [--servers 50] [--repeat 10]``

Prints the wall time of whole commands, each a fresh process as a user's shell runs it (median and best of
``--repeat``, runs of devctl and kubectl alternating): ``devctl --help``; ``devctl list`` with N DevServers
beside ``kubectl get devservers``; ``devctl shell NAME -- true`` beside ``kubectl exec POD -- true``.
Targets (issue 5): ``devctl --help`` < 0.25 s; ``devctl list`` <= 1.5x kubectl's time.

The cluster and the operator run in their own processes (a temporary state directory and kubeconfig,
removed at the end), so nothing shares a GIL with the command being timed. kubectl keeps its discovery
cache warm between runs, as it does for a user; devctl keeps its bytecode, as an installed devctl does
(``PYTHONDONTWRITEBYTECODE`` is dropped and the ``.pyc`` files go to the temporary directory, so the
checkout is not written to): without it, every run would compile the CLI and the SDK from source. Beside
the wall time, the CPU time (user + system) of the same runs is printed: on a shared machine it varies
far less than the wall time.

``devctl list`` (table, wide, name) reads with one plain HTTPS request when the kubeconfig allows
(``devservers_sdk.lightweight_read``); ``list -o json`` always goes through the SDK's client, so that row
shows what the client costs.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KUBECTL = str(BIN / "kubectl")
CONSOLE_SCRIPT = BIN / "devctl"
DEVCTL = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "devservers_cli"]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.decode(errors='replace')}")
    return elapsed, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


Runs = list[tuple[float, float]]


def compare(ours: list[str], theirs: list[str] | None, env: dict[str, str], repeat: int) -> tuple[Runs, Runs]:
    timed(ours, env)  # warm the page cache, devctl's bytecode and kubectl's discovery cache once
    if theirs:
        timed(theirs, env)
    mine: Runs = []
    other: Runs = []
    for _ in range(repeat):
        mine.append(timed(ours, env))
        if theirs:
            other.append(timed(theirs, env))
    return mine, other


def wall(runs: Runs) -> float:
    return statistics.median(elapsed for elapsed, _ in runs)


def fmt(runs: Runs) -> str:
    if not runs:
        return ""
    best = min(elapsed for elapsed, _ in runs)
    cpu = statistics.median(used for _, used in runs)
    return f"{wall(runs) * 1000:4.0f} ms (best {best * 1000:3.0f}, cpu {cpu * 1000:3.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=50, help="DevServers listed (default 50)")
    parser.add_argument("--repeat", type=int, default=10, help="runs per command (default 10)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        env = {**os.environ, "DEVSERVERS_STATE_DIR": f"{tmp}/state", "KUBECONFIG": f"{tmp}/kubeconfig",
               "PYTHONPATH": os.pathsep.join([str(ROOT / "cli"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "PYTHONPYCACHEPREFIX": f"{tmp}/pycache"}
        for key in ("DEVSERVERS_NAMESPACE", "DEVSERVERS_CONTEXT", "PYTHONDONTWRITEBYTECODE"):
            env.pop(key, None)
        subprocess.run([*DEVCTL, "local", "up"], env=env, check=True, stdout=subprocess.DEVNULL, timeout=300)
        try:
            return run(env, args.servers, args.repeat)
        finally:
            subprocess.run([*DEVCTL, "local", "down"], env=env, stdout=subprocess.DEVNULL, timeout=300)


def run(env: dict[str, str], servers: int, repeat: int) -> int:
    os.environ["KUBECONFIG"] = env["KUBECONFIG"]
    sys.path[:0] = [str(ROOT)]
    from devservers_sdk.client import DevServerClient

    with DevServerClient() as client:
        for index in range(servers):
            client.create(f"bench-{index}", flavor="cpu-small")
        client.wait("bench-0", timeout=120)
        pod = "bench-0-0"

    print(f"devctl: {' '.join(DEVCTL)}; {servers} DevServers; median of {repeat} runs, each a new process\n")
    print(f"{'command':<24} {'devctl':<32} {'kubectl':<32} {'ratio':>6}  target")
    rows = [
        ("--help", [*DEVCTL, "--help"], None, "< 250 ms"),
        (f"list ({servers} DevServers)", [*DEVCTL, "list"], [KUBECTL, "get", "devservers"], "<= 1.5x kubectl"),
        ("list -o json", [*DEVCTL, "list", "-o", "json"], [KUBECTL, "get", "devservers", "-o", "json"], ""),
        ("shell NAME -- true", [*DEVCTL, "shell", "bench-0", "--", "true"], [KUBECTL, "exec", pod, "--", "true"], ""),
    ]
    verdicts = []
    for label, ours, theirs, target in rows:
        mine, other = compare(ours, theirs, env, repeat)
        ratio = wall(mine) / wall(other) if other else None
        if label == "--help":
            verdicts.append(("--help < 250 ms", wall(mine) < 0.25))
        elif target:
            verdicts.append((f"list <= 1.5x kubectl (is {ratio:.2f}x)", ratio is not None and ratio <= 1.5))
        shown = f"{ratio:5.2f}x" if ratio else ""
        print(f"{label:<24} {fmt(mine):<32} {fmt(other):<32} {shown:>6}  {target}")
    print()
    for text, met in verdicts:
        print(f"{'met    ' if met else 'MISSED '} {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

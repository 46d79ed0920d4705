"""Reliability at full size (issue 8): the seeded workload with the operator SIGKILLed, and with a flaky API server.

Run: ``.venv/bin/python bench/reliability.py`` (200 operations, 12 kills; about 5 minutes on 2 cores), or
``--ops 60 --kills 4`` for a quicker look. ``--keep DIR`` keeps the clusters' state and the operators' logs.

Three scenarios, each on a fresh local cluster with its own operator subprocess, all running the same plan
(the same seed; ``tests/reliability/workload.py`` explains the plan, the platform and the checker):

* **fault-free**: the reference, for the end state and the number of API requests;
* **chaos**: the operator is SIGKILLed ``--kills`` times at seeded moments and started again;
* **faults**: ``--faults`` (default: about 5 % of requests answered 500, 429 with Retry-After or 409, watch
  streams cut every 1-3 s, history compacted every 10 s so resumed watches get 410 and relist).

Each scenario ends with convergence and the check: DevServers Running/Stopped as planned and matching their
spec, orphans, duplicates, mismatches, and the markers written into persistent homes read back. API requests
are counted by the local cluster, from the first operation until the end state is reached. The figures
are printed as a table; the exit status is 1 if any scenario did not reach the planned end state, if the
faults changed it, or if the faults cost more than 3 times the fault-free requests.
"""

# ruff: noqa: E402  (the path fix below must come before the other imports)
from __future__ import annotations

import os
import sys

# bench/ holds a script named like the standard library's ``operator``, which argparse, enum and asyncio
# import: take this directory off the path before anything else is imported, and put the repository on it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_HERE)] + [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from devservers_sdk.localcluster.apiserver.faults import FaultSettings
from tests.reliability.workload import Report, plan, run_scenario

DEFAULT_FAULTS = "error=0.03,throttle=0.01,conflict=0.01,watch_cut=2,compact_every=10"
REQUEST_BOUND = 3.0


def table(reports: list[Report], markers: int) -> str:
    header = ["scenario", "ops", "kills", "Running", "Stopped", "orphans", "duplicates", "mismatches",
              "markers kept", "lost", "API requests", "faults 500/429/409", "wall"]
    rows = [header]
    for r in reports:
        injected = (f"{r.faults.get('500', 0)}/{r.faults.get('429', 0)}/{r.faults.get('409', 0)}, "
                    f"{r.faults.get('watch_cut', 0)} cuts, {r.faults.get('compaction', 0)} compactions")
        rows.append([r.label, str(r.ops), str(r.kills), str(r.end.running), str(r.end.stopped),
                     str(len(r.end.orphans)), str(len(r.end.duplicates)), str(len(r.end.mismatches)),
                     f"{r.end.markers_kept}/{markers}", str(len(r.end.markers_lost)), str(r.requests),
                     injected if r.faults else "-", f"{r.wall_seconds:.0f}s"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/reliability.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=200, help="operations in the workload (default 200)")
    parser.add_argument("--kills", type=int, default=12, help="SIGKILLs of the operator in the chaos run")
    parser.add_argument("--seed", type=int, default=9, help="seed of the plan, the kills and the faults "
                                                            "(default 9: its plan ends with stopped servers "
                                                            "holding markers)")
    parser.add_argument("--max-live", type=int, default=30, help="DevServers alive at once at most")
    parser.add_argument("--think", type=float, default=0.05, help="mean pause between operations (seconds)")
    parser.add_argument("--faults", default=DEFAULT_FAULTS, help=f"fault settings (default {DEFAULT_FAULTS})")
    parser.add_argument("--only", choices=["chaos", "faults"], help="run one scenario (faults includes the "
                                                                    "fault-free reference)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep state and operator logs in DIR")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every operation")
    args = parser.parse_args(argv)
    if args.kills < 0 or args.ops < 1:
        parser.error("--ops must be at least 1 and --kills not negative")
    try:
        faults = FaultSettings.parse(f"{args.faults},seed={args.seed}")
    except ValueError as exc:
        parser.error(str(exc))

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="reliability-"))
    started = time.monotonic()

    def log(message: str) -> None:
        if args.verbose or not message.startswith("  op "):
            print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    _, expected = plan(args.seed, args.ops, max_live=args.max_live)
    markers = sum(len(e.markers) for e in expected.values())
    print(f"plan: seed {args.seed}, {args.ops} operations, {len(expected)} DevServers left at the end "
          f"({sum(e.stopped for e in expected.values())} stopped), {markers} markers to keep; "
          f"{os.cpu_count()} host CPUs shared with whatever else runs", flush=True)

    def scenario(label: str, *, kills: int = 0, with_faults: FaultSettings | None = None) -> Report:
        log(f"{label} run")
        return run_scenario(workdir / label, label=label, seed=args.seed, ops=args.ops, kills=kills,
                            faults=with_faults, max_live=args.max_live, think=args.think, converge_timeout=300.0,
                            log=log)

    reports: list[Report] = []
    try:
        if args.only != "chaos":
            reports.append(scenario("fault-free"))
        if args.only != "faults":
            reports.append(scenario("chaos", kills=args.kills))
        if args.only != "chaos":
            reports.append(scenario("faults", with_faults=faults))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(table(reports, markers))
    print()
    ok = True
    by_label = {r.label: r for r in reports}
    for r in reports:
        total = sum(r.faults.get(k, 0) for k in ("500", "429", "409"))
        sent = r.requests + r.checker_requests  # the faults hit the checker's requests too
        share = f", {100 * total / sent:.1f} % of requests failed" if r.faults and sent else ""
        print(f"{r.label}: operator started {r.operator_starts}x, {r.operator_tracebacks} tracebacks in its log "
              f"(failed reconciles, retried), {r.retried_marks} marker writes repeated (pod replaced under the "
              f"exec), workload {r.workload_seconds:.0f}s, converged {r.end.converge_seconds:.1f}s after{share}")
        for problem in r.end.problems[:20]:
            print(f"  PROBLEM {problem}")
        ok = ok and not r.end.problems
    reference = by_label.get("fault-free")
    for label in ("chaos", "faults"):
        other = by_label.get(label)
        if reference is not None and other is not None:
            same = other.end.summary == reference.end.summary
            print(f"{label}: same end state as fault-free: {'yes' if same else 'NO'}")
            ok = ok and same
    faulty = by_label.get("faults")
    if reference is not None and faulty is not None:
        ratio = faulty.requests / max(1, reference.requests)
        within = ratio <= REQUEST_BOUND
        print(f"API requests: {reference.requests} fault-free, {faulty.requests} with faults: {ratio:.2f}x "
              f"(bound {REQUEST_BOUND:g}x: {'ok' if within else 'MISSED'})")
        ok = ok and within
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The fuzz properties of ``tests/fuzz`` at benchmark size: thousands of generated specs, and what became of them.

Usage::

    .venv/bin/python bench/fuzz.py                          # 2,000 in-process + 1,000 cluster examples
    .venv/bin/python bench/fuzz.py --pure 500 --cluster 150  # a quicker look

The same properties as the tests (``tests/fuzz/properties.py``), under the ``devservers-bench`` hypothesis
profile, counting rather than stopping at the first violation:

* in-process, ``--pure`` DevServers and ``--pure`` flavors through the SDK's models and the emulator's API
  semantics (schema, CEL rules, defaults), and the operator's StatefulSet and Service for every valid one
  through the API server's validation;
* on a cluster (the deployed product: CRDs, flavors, the owner policy, the operator as its
  ServiceAccount), ``--cluster`` examples split between raw DevServer writes, raw flavor writes (each with a
  DevServer on it) and SDK ``create`` calls; every 20 examples a quiet window looks for hot loops and the
  operator's log for refused writes and failed reconciles.

Exits 1 when any property was violated, after printing the violations.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]
ROOT = os.path.dirname(_HERE)
sys.path.insert(0, ROOT)

import argparse  # noqa: E402
import collections  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzz import specs  # noqa: E402
from tests.fuzz.properties import (  # noqa: E402
    CLUSTER_PHASES,
    ClusterFuzz,
    InProcessServer,
    PropertyViolation,
    Stats,
)
from tests.security.secured_platform import SecuredPlatform  # noqa: E402

ROWS = (
    ("examples tried", "examples"),
    ("refused by the SDK", "refused by the SDK"),
    ("refused by the API server", "refused by the API server"),
    ("accepted", "accepted"),
    ("  of which only the SDK's model refuses", "model-only refusal"),
    ("built objects the API server accepts", "built objects accepted"),
    ("reconciled by the operator", "reconciled"),
    ("not reconciled in time", "not reconciled"),
    ("operator crashes (process exits)", "operator crashes"),
    ("failed reconciles", "failed reconciles"),
    ("hot loops", "hot loops"),
    ("writes the API server refused", "refused writes"),
    ("requests in quiet windows", "requests in quiet windows"),
    ("harness errors", "harness errors"),
)


def run(property_: Callable[..., None], strategy: st.SearchStrategy[Any], examples: int, stats: Stats,
        **extra: Any) -> None:
    """Run ``property_`` on ``examples`` drawn values, counting violations and unexpected errors."""

    @settings(settings.get_profile("devservers-bench"), max_examples=examples, **extra)
    @given(strategy)
    def each(arguments: tuple[Any, ...]) -> None:
        try:
            property_(*arguments)
        except PropertyViolation as exc:
            if str(exc) not in stats.violations:
                stats.violations.append(str(exc))
        except Exception as exc:  # a harness failure must not end the run; it is counted and shown
            stats.add("harness errors")
            stats.violations.append(f"{type(exc).__name__} while fuzzing: {exc}")

    each()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pure", type=int, default=1000, help="in-process examples per kind (DevServer, flavor)")
    parser.add_argument("--cluster", type=int, default=1000, help="cluster examples in all")
    parser.add_argument("--batch", type=int, default=20, help="cluster examples between two quiet windows")
    args = parser.parse_args()
    settings.load_profile("devservers-bench")

    pure = InProcessServer()
    started = time.monotonic()
    run(pure.check_devserver, st.tuples(specs.devservers(), specs.valid_flavor()), args.pure, pure.stats)
    run(pure.check_flavor, st.tuples(specs.flavors(), specs.valid_devserver()), args.pure, pure.stats)
    pure_seconds = time.monotonic() - started
    print(f"in-process: {pure.stats.counts['examples']} examples in {pure_seconds:.0f}s", flush=True)

    cluster_stats = Stats()
    cluster_seconds = 0.0
    if args.cluster:
        with tempfile.TemporaryDirectory(prefix="fuzz-bench-") as workdir:
            platform = SecuredPlatform(Path(workdir), operator_env={"DEVSERVERS_PROBE_INTERVAL": "1h"}).start()
            fuzz = ClusterFuzz(platform, strict=False, batch=args.batch)
            cluster_stats = fuzz.stats
            sizes = st.integers(min_value=1, max_value=3)
            shares = (args.cluster * 4 // 10, args.cluster * 3 // 10)
            started = time.monotonic()
            try:
                run(fuzz.devserver_raw, st.tuples(specs.devservers(world_sizes=sizes)), shares[0], fuzz.stats,
                    phases=CLUSTER_PHASES)
                run(fuzz.flavor_raw, st.tuples(specs.flavors(), specs.valid_devserver(world_sizes=sizes)),
                    shares[1], fuzz.stats, phases=CLUSTER_PHASES)
                run(fuzz.devserver_sdk, st.tuples(specs.create_arguments()), args.cluster - sum(shares),
                    fuzz.stats, phases=CLUSTER_PHASES)
                fuzz.end_batch()
            finally:
                cluster_seconds = time.monotonic() - started
                fuzz.close()
                platform.stop()

    print()
    print(f"{'':42} {'in-process':>12} {'cluster':>12}")
    for label, key in ROWS:
        print(f"{label:42} {pure.stats.counts.get(key, 0):>12} {cluster_stats.counts.get(key, 0):>12}")
    print(f"{'violations':42} {len(pure.stats.violations):>12} {len(cluster_stats.violations):>12}")
    print(f"{'seconds':42} {pure_seconds:>12.0f} {cluster_seconds:>12.0f}")
    violations = pure.stats.violations + cluster_stats.violations
    if violations:
        print("\nViolations (first 10 of each kind):")
        seen: collections.Counter[str] = collections.Counter()
        for violation in violations:
            kind = violation[:60]
            seen[kind] += 1
            if seen[kind] <= 10:
                print(f"- {violation[:2000]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

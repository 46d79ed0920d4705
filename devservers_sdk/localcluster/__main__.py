"""``python -m devservers_sdk.localcluster serve --kubeconfig PATH [--port N] [--state-dir DIR]``.

``python -m devservers_sdk.localcluster build [--cache-dir DIR]`` builds the real control plane's binaries.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from .apiserver.faults import FaultSettings
from .cluster import serve


def _capacity(values: list[str]) -> dict[str, str]:
    capacity = {}
    for value in values:
        key, sep, amount = value.partition("=")
        if not sep or not key or not amount:
            raise argparse.ArgumentTypeError(f"--node-capacity expects RESOURCE=QUANTITY, got {value!r}")
        capacity[key] = amount
    return capacity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devservers_sdk.localcluster",
        description="A local Kubernetes API emulator whose kubelet runs pods as local processes.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve", help="run the cluster in the foreground until SIGINT/SIGTERM",
        epilog="example: python -m devservers_sdk.localcluster serve --kubeconfig ./kubeconfig && "
               "kubectl --kubeconfig ./kubeconfig get nodes",
    )
    serve_parser.add_argument("--kubeconfig", required=True, type=Path,
                              help="where to write the kubeconfig (mode 0600) once the cluster is ready")
    serve_parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 picks a free one)")
    serve_parser.add_argument("--state-dir", type=Path, default=None,
                              help="where volumes and pod sandboxes live (default: a temporary directory)")
    serve_parser.add_argument("--node-capacity", action="append", default=[], metavar="RESOURCE=QUANTITY",
                              help="extra node capacity, e.g. nvidia.com/gpu=2 (repeatable)")
    serve_parser.add_argument("--faults", default="", metavar="SETTINGS",
                              help="make the API flaky, e.g. error=0.05,throttle=0.02,conflict=0.01,latency=0.01,"
                                   "watch_cut=5,compact_every=10,seed=1 (see faults.py)")
    serve_parser.add_argument("-v", "--verbose", action="store_true", help="log requests and controller activity")
    build_parser = commands.add_parser(
        "build", help="build (or find cached) etcd, kube-apiserver, kube-controller-manager and kube-scheduler",
        epilog="example: python -m devservers_sdk.localcluster build  (needs Go; the first build takes a while)",
    )
    build_parser.add_argument("--cache-dir", type=Path, default=None,
                              help="where the binaries are kept (default: $DEVSERVERS_CONTROL_PLANE_CACHE/<version> "
                                   "or ~/.cache/devservers/control-plane/<version>)")
    args = parser.parse_args(argv)
    if args.command == "build":
        return _build(args.cache_dir)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        capacity = _capacity(args.node_capacity)
        faults = FaultSettings.parse(args.faults) if args.faults else None
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(str(exc))

    def ready(url: str) -> None:
        print(f"local cluster serving at {url}; kubeconfig written to {args.kubeconfig}", flush=True)

    asyncio.run(serve(kubeconfig=args.kubeconfig, port=args.port, state_dir=args.state_dir,
                      node_capacity=capacity or None, faults=faults, on_ready=ready))
    return 0


def _build(cache_dir: Path | None) -> int:
    import time

    from .controlplane.build import ControlPlaneBuildError, ensure_binaries

    started = time.monotonic()
    try:
        binaries = ensure_binaries(cache_dir=cache_dir, progress=lambda line: print(line, flush=True))
    except ControlPlaneBuildError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    for name, path in binaries.all().items():
        print(f"{name:<24} {path.stat().st_size / 1e6:7.1f} MB  {path}")
    print(f"Kubernetes {binaries.kubernetes_version}, etcd {binaries.etcd_version}: "
          f"ready in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

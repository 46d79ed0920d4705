"""``python -m devservers_sdk.localcluster serve --kubeconfig PATH [--control-plane emulator|kubernetes] ...``.

``python -m devservers_sdk.localcluster build [--cache-dir DIR]`` builds the real control plane's binaries;
``python -m devservers_sdk.localcluster node --kubeconfig PATH --state-dir DIR ...`` runs one node agent
against any API server (``serve --control-plane kubernetes`` starts one for you).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from .apiserver.faults import FaultSettings
from .cluster import serve, with_gpus


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
    serve_parser.add_argument("--keep-objects", action="store_true",
                              help="emulator: save the objects in --state-dir at shutdown and load them at the next "
                                   "start (pods come back from their controllers), as a real cluster keeps etcd")
    serve_parser.add_argument("--node-capacity", action="append", default=[], metavar="RESOURCE=QUANTITY",
                              help="extra node capacity, e.g. nvidia.com/gpu=2 (repeatable)")
    serve_parser.add_argument("--gpus", type=int, default=0, metavar="N",
                              help="give each node N fake NVIDIA GPUs (capacity, labels and an nvidia-smi; the "
                                   "pods' processes run on the CPU)")
    serve_parser.add_argument("--faults", default="", metavar="SETTINGS",
                              help="make the API flaky, e.g. error=0.05,throttle=0.02,conflict=0.01,latency=0.01,"
                                   "watch_cut=5,compact_every=10,seed=1 (see faults.py)")
    serve_parser.add_argument("--control-plane", choices=("emulator", "kubernetes"), default="emulator",
                              help="emulator (ours, starts in a fraction of a second) or kubernetes (etcd and the "
                                   "kube-* binaries built from Go modules on first use, with our node agent)")
    serve_parser.add_argument("--nodes", type=int, default=1, metavar="N",
                              help="run N nodes, each a node agent of its own (a second node lets kubectl drain "
                                   "move pods)")
    serve_parser.add_argument("--user", action="append", default=[], metavar="NAME[:GROUP,...]",
                              help="mint a kubeconfig for this identity next to --kubeconfig, e.g. alice or "
                                   "carol:devservers:admins (repeatable; kubernetes control plane only)")
    serve_parser.add_argument("-v", "--verbose", action="store_true", help="log requests and controller activity")
    node_parser = commands.add_parser(
        "node", help="run a node agent (our kubelet) against an API server until SIGINT/SIGTERM",
        epilog="example: python -m devservers_sdk.localcluster node --kubeconfig node.kubeconfig --state-dir ./node "
               "--serving-cert kubelet.crt --serving-key kubelet.key --client-ca ca.crt",
    )
    node_parser.add_argument("--kubeconfig", required=True, type=Path,
                             help="credentials of system:node:<name> (group system:nodes), embedded")
    node_parser.add_argument("--state-dir", required=True, type=Path, help="pods, volumes and the hosts file")
    node_parser.add_argument("--name", default="localcluster", help="the Node's name")
    node_parser.add_argument("--capacity", action="append", default=[], metavar="RESOURCE=QUANTITY",
                             help="extra node capacity, e.g. nvidia.com/gpu=4 (repeatable)")
    node_parser.add_argument("--serving-cert", type=Path, required=True, help="the kubelet API's certificate")
    node_parser.add_argument("--serving-key", type=Path, required=True, help="and its key")
    node_parser.add_argument("--client-ca", type=Path, default=None,
                             help="require client certificates of this CA on the kubelet API (the API server's)")
    node_parser.add_argument("--port", type=int, default=0, help="kubelet API port on 127.0.0.1 (0: a free one)")
    node_parser.add_argument("--port-file", type=Path, default=None, help="write the kubelet API port here")
    node_parser.add_argument("--pod-cidr", default=None, metavar="CIDR",
                             help="pod addresses come from this range of 127.0.0.0/8 (default: a random /16)")
    node_parser.add_argument("--provisioner-kubeconfig", type=Path, default=None,
                             help="also run the local-path volume provisioner with these credentials")
    node_parser.add_argument("--names-kubeconfig", type=Path, default=None,
                             help="credentials that may list every pod, Service and Endpoints (as CoreDNS may), "
                                  "so pods of other nodes and Services resolve through the hosts file")
    node_parser.add_argument("-v", "--verbose", action="store_true", help="log the agent's activity")
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
    if args.command == "node":
        return _node(args, parser)
    if args.control_plane == "kubernetes":
        return _serve_kubernetes(args, parser)
    if args.user:
        parser.error("--user needs --control-plane kubernetes (the emulator does not enforce RBAC)")
    if args.nodes < 1:
        parser.error(f"--nodes {args.nodes}: a cluster needs at least one node")
    try:
        capacity = with_gpus(_capacity(args.node_capacity), args.gpus)
        faults = FaultSettings.parse(args.faults) if args.faults else None
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(str(exc))

    def ready(url: str) -> None:
        print(f"local cluster serving at {url}; kubeconfig written to {args.kubeconfig}", flush=True)

    asyncio.run(serve(kubeconfig=args.kubeconfig, port=args.port, state_dir=args.state_dir,
                      node_capacity=capacity or None, faults=faults, on_ready=ready, nodes=args.nodes,
                      keep_objects=args.keep_objects))
    return 0


def _users(values: list[str]) -> list[tuple[str, list[str]]]:
    users = []
    for value in values:
        name, _, groups = value.partition(":")
        if not name:
            raise argparse.ArgumentTypeError(f"--user expects NAME[:GROUP,...], got {value!r}")
        users.append((name, [g for g in groups.split(",") if g]))
    return users


def _node(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .node.agent import NodeAgent, NodeAgentConfig, run

    try:
        capacity = _capacity(args.capacity)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    config = NodeAgentConfig(
        kubeconfig=args.kubeconfig, state_dir=args.state_dir, node_name=args.name, capacity=capacity,
        serving_cert=args.serving_cert, serving_key=args.serving_key, client_ca=args.client_ca,
        kubelet_port=args.port, provisioner_kubeconfig=args.provisioner_kubeconfig,
        names_kubeconfig=args.names_kubeconfig, pod_cidr=args.pod_cidr,
    )

    def ready(agent: NodeAgent) -> None:
        if args.port_file is not None:
            args.port_file.write_text(f"{agent.kubelet_api.port}\n")
        print(f"node {args.name} registered; kubelet API on 127.0.0.1:{agent.kubelet_api.port}", flush=True)

    asyncio.run(run(config, on_ready=ready))
    return 0


def _serve_kubernetes(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import signal
    import tempfile
    import threading

    from .cluster import LocalCluster

    try:
        capacity = with_gpus(_capacity(args.node_capacity), args.gpus)
        users = _users(args.user)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(str(exc))
    if args.faults:
        parser.error("--faults is the emulator's: a real API server cannot be told to fail")
    state = args.state_dir or Path(tempfile.mkdtemp(prefix="localcluster-"))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    cluster = LocalCluster(state_dir=state, control_plane="kubernetes", node_capacity=capacity or None,
                           users=users, progress=lambda line: print(line, flush=True), nodes=args.nodes)
    try:
        cluster.start()
        cluster.write_kubeconfig(args.kubeconfig)
        print(f"local cluster (Kubernetes {cluster.version}) serving at {cluster.url}; "
              f"kubeconfig written to {args.kubeconfig}", flush=True)
        for name, _groups in users:
            path = args.kubeconfig.with_name(f"{args.kubeconfig.name}.{name}")
            cluster.user_kubeconfig(name, path=path)
            print(f"  {name}: {path}", flush=True)
        stop.wait()
    finally:
        cluster.stop()
        args.kubeconfig.unlink(missing_ok=True)
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

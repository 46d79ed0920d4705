"""``devctl local up|down|status``: a cluster with the operator on this machine (see ``local_platform``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import (
    SECONDS,
    key_values,
    kubeconfig_option,
    output_option,
    stdin_is_terminal,
    target,
    timeout_option,
)

state_dir_option = click.option(
    "--state-dir", metavar="DIR",
    help="Where pids, logs and volumes live (default: DEVSERVERS_STATE_DIR, else "
         "$XDG_STATE_HOME/devservers/local, i.e. ~/.local/state/devservers/local).")


def _defaulted(ctx: click.Context, option: str) -> bool:
    """Was ``option`` left at its default (so this command may pick one that suits the control plane)?"""
    return ctx.get_parameter_source(option) is click.core.ParameterSource.DEFAULT


def _user_kubeconfig(ctx: click.Context) -> Path:
    """The file the context goes into: --kubeconfig, else the first KUBECONFIG entry, else ~/.kube/config."""
    from devservers_sdk.settings import kubeconfig_paths

    return kubeconfig_paths(target(ctx).kubeconfig)[0]


@click.group()
def local() -> None:
    """Run a cluster with the devservers operator on this machine.

    By default the local cluster is our emulator of the Kubernetes API (it starts in a second); with `up
    --kubernetes` it is a real control plane (etcd, kube-apiserver, kube-controller-manager,
    kube-scheduler, built from source on first use). Either way its objects and volumes survive `down`
    for the next `up`; `down --purge` deletes them.
    Either way pods are local processes: no containers, no images, no real GPUs (`up --gpus N` fakes
    them), but every devctl command
    (and kubectl) works against it.

    \b
    Examples:
      devctl local up
      devctl local up --kubernetes
      devctl local status
      devctl local down
      devctl local down --purge
    """


@local.command()
@state_dir_option
@click.option("--kubernetes", "real", is_flag=True,
              help="Run a real Kubernetes control plane instead of the emulator (its binaries are built with "
                   "Go the first time, which takes many minutes; its data is kept by `devctl local down`).")
@timeout_option("2m", what="if the cluster or the operator is not ready (5m for --kubernetes)")
@click.option("--node-capacity", "capacity", multiple=True, metavar="RESOURCE=QUANTITY",
              callback=key_values("nvidia.com/gpu=2"),
              help="What the node advertises, over cpu=64 and memory=256Gi, e.g. nvidia.com/gpu=2 "
                   "(repeatable).")
@click.option("--gpus", type=click.IntRange(min=0), default=0, metavar="N",
              help="Give the node N fake NVIDIA GPUs: GPU flavors schedule, get their env and an nvidia-smi that "
                   "reports them; the processes run on the CPU.")
@kubeconfig_option
@click.pass_context
def up(ctx: click.Context, state_dir: str | None, real: bool, timeout: float,
       capacity: dict[str, str], gpus: int) -> None:
    """Start the local cluster and the operator in the background, and select their context.

    Installs the CRDs and the sample flavors, then adds a `devservers-local` context to your
    kubeconfig (--kubeconfig, else the first file of KUBECONFIG, else ~/.kube/config) and selects it;
    `devctl local down` selects the previous one again. Running it twice is harmless.

    With --kubernetes, the cluster is a real control plane with our node agent: the first time, its
    binaries are built from source with Go (many minutes, with progress); later it starts in well under
    a minute, and finds again every DevServer and home volume of its previous run.

    \b
    Examples:
      devctl local up && devctl create mydev --flavor cpu-small --wait
      devctl local up --kubernetes
      devctl local up --gpus 8 && devctl create big --flavor gpu-large --wait
    """
    from .local_platform import EMULATOR, KUBERNETES, LocalPlatform, LocalPlatformError

    if real and _defaulted(ctx, "timeout"):
        timeout = 300.0  # a real control plane on a busy laptop takes a minute or more to become ready
    if gpus:
        # Sized like an 8-GPU instance (p4d: 96 vCPUs, 1152 GiB), so the sample GPU flavors fit; --node-capacity wins.
        capacity = {"cpu": "96", "memory": "1152Gi", **capacity, "nvidia.com/gpu": str(gpus)}
    platform = LocalPlatform(Path(state_dir) if state_dir else None)
    try:
        status, started = platform.up(_user_kubeconfig(ctx), report=click.echo, timeout=timeout,
                                      node_capacity=capacity, control_plane=KUBERNETES if real else EMULATOR)
    except LocalPlatformError as exc:
        raise click.ClickException(str(exc)) from exc
    if started:
        click.echo(f"The local cluster ({status.label}) is up at {status.url}. "
                   f"Try: devctl create mydev --flavor cpu-small --wait")
    else:
        click.echo(f"The local cluster ({status.label}) is already running at "
                   f"{status.url} (pids {status.cluster_pid}, {status.operator_pid}; "
                   f"state in {status.state_dir}).")


@local.command()
@state_dir_option
@click.option("--purge", is_flag=True,
              help="Also delete the state directory: the local cluster's DevServers and home volumes, and the "
                   "logs (asks first on a terminal).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before --purge deletes.")
@click.option("--timeout", type=SECONDS, default="15s", show_default=True,
              help="How long to wait after SIGTERM before SIGKILL (at least 1m for --kubernetes's cluster, "
                   "which stops its node, pods and etcd in order).")
@click.pass_context
def down(ctx: click.Context, state_dir: str | None, purge: bool, yes: bool, timeout: float) -> None:
    """Stop the local cluster and the operator, and remove their kubeconfig context.

    The cluster's objects and volumes are kept in the state directory, and the next `devctl local up`
    (with --kubernetes for a real control plane) finds every DevServer and home volume again; --purge
    deletes them (and the logs) for good, after asking on a terminal.

    \b
    Examples:
      devctl local down
      devctl local down --purge --yes
    """
    from .local_platform import KUBERNETES, LocalPlatform, LocalPlatformError

    platform = LocalPlatform(Path(state_dir) if state_dir else None)
    if purge and not yes and stdin_is_terminal() and platform.root.exists():
        click.confirm(f"Delete {platform.root} for good, with every DevServer and home volume of the local "
                      f"cluster and the logs?", abort=True)
    running = platform.status()
    if running.control_plane == KUBERNETES and _defaulted(ctx, "timeout"):
        timeout = 60.0
    was_up = platform.down(report=click.echo, timeout=timeout)
    if purge:
        try:
            deleted = platform.purge()
        except LocalPlatformError as exc:
            raise click.ClickException(str(exc)) from exc
        done = "The local cluster is down" if was_up else "The local cluster was not running"
        click.echo(f"{done}; its state directory {platform.root} is deleted, with every DevServer and home "
                   f"volume (purged)." if deleted else
                   f"{done}; there was no state directory to delete ({platform.root}).")
        return
    found = platform.kept(running.control_plane)
    kept, plane = found["kept_data"], found["kept_control_plane"]
    flag = " --kubernetes" if plane == KUBERNETES else ""
    keeping = (f"Its objects and volumes are kept in {kept}: `devctl local up{flag}` starts it again with every "
               f"DevServer and home volume; `devctl local down --purge` deletes them." if kept else
               "It had nothing to keep.")
    click.echo(f"The local cluster is down. {keeping}" if was_up else f"The local cluster is not running. {keeping}")


@local.command()
@state_dir_option
@output_option(("table", "json"))
@click.pass_context
def status(ctx: click.Context, state_dir: str | None, output: str) -> None:
    """Say whether the local cluster and the operator run, which control plane, pids, URL and context.

    Exits 0 when both run, 3 when they do not (as `systemctl status` does).

    \b
    Examples:
      devctl local status
      devctl local status -o json
    """
    from dataclasses import asdict

    from .local_platform import KUBERNETES, LocalPlatform

    state = LocalPlatform(Path(state_dir) if state_dir else None).status()
    if output == "json":
        click.echo(json.dumps({**asdict(state), "running": state.running}, indent=2))
    else:
        def process(alive: bool, pid: int | None) -> str:
            return f"running (pid {pid})" if alive else ("stopped" if pid is None else f"not running (pid {pid} gone)")

        selected = "selected" if state.selected else "not selected"
        context = f"{state.context} in {state.kubeconfig} ({selected})" if state.context else "-"
        rows = [("Local cluster", process(state.cluster_alive, state.cluster_pid)),
                ("Control plane", state.describe_control_plane()),
                ("Operator", process(state.operator_alive, state.operator_pid)),
                ("URL", state.url or "-"), ("Context", context), ("Started", state.started_at or "-"),
                ("State", state.state_dir)]
        if state.kept_data and not state.cluster_alive:
            flag = " --kubernetes" if state.kept_control_plane == KUBERNETES else ""
            rows.append(("Kept data", f"{state.kept_data} (`devctl local up{flag}` starts it again)"))
        for label, value in rows:
            click.echo(f"{label + ':':<15}{value}")
    if not state.running:
        ctx.exit(3)

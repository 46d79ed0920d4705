"""``devctl local up|down|status``: a cluster with the operator on this machine (see ``local_platform``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import SECONDS, key_values, kubeconfig_option, output_option, target, timeout_option

state_dir_option = click.option(
    "--state-dir", metavar="DIR",
    help="Where pids, logs and volumes live (default: DEVSERVERS_STATE_DIR, else "
         "$XDG_STATE_HOME/devservers/local, i.e. ~/.local/state/devservers/local).")


def _user_kubeconfig(ctx: click.Context) -> Path:
    """The file the context goes into: --kubeconfig, else the first KUBECONFIG entry, else ~/.kube/config."""
    from devservers_sdk.settings import kubeconfig_paths

    return kubeconfig_paths(target(ctx).kubeconfig)[0]


@click.group()
def local() -> None:
    """Run a cluster with the devservers operator on this machine.

    The local cluster is an emulator of the Kubernetes API whose pods are local processes: no
    containers, no images, no GPUs, but every devctl command (and kubectl) works against it.

    \b
    Examples:
      devctl local up
      devctl local status
      devctl local down
    """


@local.command()
@state_dir_option
@timeout_option("2m", what="if the cluster or the operator is not ready")
@click.option("--node-capacity", "capacity", multiple=True, metavar="RESOURCE=QUANTITY",
              callback=key_values("nvidia.com/gpu=2"),
              help="What the node advertises, over cpu=64 and memory=256Gi, e.g. nvidia.com/gpu=2 "
                   "(repeatable).")
@kubeconfig_option
@click.pass_context
def up(ctx: click.Context, state_dir: str | None, timeout: float, capacity: dict[str, str]) -> None:
    """Start the local cluster and the operator in the background, and select their context.

    Installs the CRDs and the sample flavors, then adds a `devservers-local` context to your
    kubeconfig (--kubeconfig, else the first file of KUBECONFIG, else ~/.kube/config) and selects it;
    `devctl local down` selects the previous one again. Running it twice is harmless.

    \b
    Example:
      devctl local up && devctl create mydev --flavor cpu-small --wait
    """
    from .local_platform import LocalPlatform, LocalPlatformError

    platform = LocalPlatform(Path(state_dir) if state_dir else None)
    try:
        status, started = platform.up(_user_kubeconfig(ctx), report=click.echo, timeout=timeout,
                                      node_capacity=capacity)
    except LocalPlatformError as exc:
        raise click.ClickException(str(exc)) from exc
    if started:
        click.echo(f"The local cluster is up at {status.url}. Try: devctl create mydev --flavor cpu-small --wait")
    else:
        click.echo(f"The local cluster is already running at {status.url} (pids {status.cluster_pid}, "
                   f"{status.operator_pid}; state in {status.state_dir}).")


@local.command()
@state_dir_option
@click.option("--timeout", type=SECONDS, default="15s", show_default=True,
              help="How long to wait after SIGTERM before SIGKILL.")
def down(state_dir: str | None, timeout: float) -> None:
    """Stop the local cluster and the operator, and remove their kubeconfig context.

    Everything in the cluster is gone afterwards; logs stay in the state directory.

    \b
    Example:
      devctl local down
    """
    from .local_platform import LocalPlatform

    if not LocalPlatform(Path(state_dir) if state_dir else None).down(report=click.echo, timeout=timeout):
        click.echo("The local cluster is not running.")
        return
    click.echo("The local cluster is down.")


@local.command()
@state_dir_option
@output_option(("table", "json"))
@click.pass_context
def status(ctx: click.Context, state_dir: str | None, output: str) -> None:
    """Say whether the local cluster and the operator run, with pids, URL and kubeconfig context.

    Exits 0 when both run, 3 when they do not (as `systemctl status` does).

    \b
    Examples:
      devctl local status
      devctl local status -o json
    """
    from dataclasses import asdict

    from .local_platform import LocalPlatform

    state = LocalPlatform(Path(state_dir) if state_dir else None).status()
    if output == "json":
        click.echo(json.dumps({**asdict(state), "running": state.running}, indent=2))
    else:
        def process(alive: bool, pid: int | None) -> str:
            return f"running (pid {pid})" if alive else ("stopped" if pid is None else f"not running (pid {pid} gone)")

        selected = "selected" if state.selected else "not selected"
        context = f"{state.context} in {state.kubeconfig} ({selected})" if state.context else "-"
        rows = [("Local cluster", process(state.cluster_alive, state.cluster_pid)),
                ("Operator", process(state.operator_alive, state.operator_pid)),
                ("URL", state.url or "-"), ("Context", context), ("Started", state.started_at or "-"),
                ("State", state.state_dir)]
        for label, value in rows:
            click.echo(f"{label + ':':<15}{value}")
    if not state.running:
        ctx.exit(3)

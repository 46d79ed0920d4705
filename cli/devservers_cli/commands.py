"""The DevServer commands: each parses its flags, makes one SDK call, and renders the answer.

Errors are not handled here: every ``DevServerError`` rises to the group (``main.py``), which prints one
``Error: ...`` line and exits 1. Human messages go to stdout when they are the answer (``created``,
``deleted``) and to stderr when they are commentary (progress, "No DevServers found"), so that
``-o name`` and ``-o json`` stay machine-readable.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast

import click

from . import render as views
from .options import (
    DURATION,
    Target,
    cluster_options,
    complete_flavor,
    key_values,
    name_argument,
    output_option,
    stdin_is_terminal,
    target,
    timeout_option,
)
from .progress import WaitProgress

if TYPE_CHECKING:
    from devservers_sdk.client import DevServerClient
    from devservers_sdk.models import DevServer

Backend = Literal["nccl", "gloo"] | None
WRITE_FORMATS = ("json", "yaml", "name")
# json and yaml print the objects as the models dump them: only the client can read them that way.
QUICK_LIST_FORMATS = ("table", "wide", "name")
PHASES = ("Running", "Stopped", "Failed", "deleted")


def _show(objects: list[Any], output: str, kind: views.Kind, **kwargs: Any) -> None:
    text = views.render(objects, output, kind, **kwargs)
    if text:
        click.echo(text)


def _where(client: DevServerClient) -> str:
    return f"namespace '{client.namespace}'"


def _running(server: DevServer, flags: str) -> str:
    """``DevServer 'x' is Running (1/1 ready). Connect with: devctl shell x``."""
    hint = f"Connect with: devctl shell {server.name}{flags}"
    if views.world_size(server) > 1:
        hint += f" [--rank 0..{views.world_size(server) - 1}]"
    return f"DevServer '{server.name}' is Running ({views.ready(server)} ready). {hint}"


def _wait(client: DevServerClient, name: str, *, for_phase: str | None, timeout: float) -> DevServer:
    with WaitProgress(sys.stderr) as progress:
        return client.wait(name, for_phase=for_phase, timeout=timeout, on_progress=progress)


# -- flavors ---------------------------------------------------------------------------------------------

@click.command()
@cluster_options
@output_option()
@click.pass_context
def flavors(ctx: click.Context, output: str) -> None:
    """List the DevServer sizes this cluster offers.

    \b
    Examples:
      devctl flavors
      devctl flavors -o wide      # also max lifetime, idle timeout, image
    """
    with target(ctx).client() as client:
        found = client.flavors()
    if not found and output in ("table", "wide"):
        click.echo("No flavors are installed on this cluster; ask your cluster admin for some "
                   "(on the local cluster: devctl local up installs the samples).", err=True)
    _show(found, output, views.FLAVOR)


# -- create ----------------------------------------------------------------------------------------------

def _nprocs(value: str | None) -> int | Literal["auto"] | None:
    if value is None:
        return None
    if value == "auto":
        return "auto"
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise click.BadParameter(f"expected a number of processes >= 1 or auto, got {value!r}",
                             param_hint="'--nprocs-per-node'")


@click.command()
@name_argument()
@click.option("--flavor", required=True, metavar="FLAVOR", shell_complete=complete_flavor,
              help="Size of each pod, from `devctl flavors`.")
@click.option("--image", metavar="IMAGE", help="Container image (default: the flavor's).")
@click.option("--home-size", metavar="SIZE",
              help="Persistent home volume per pod, e.g. 50Gi (default: the flavor's, else the cluster's).")
@click.option("--no-home", is_flag=True,
              help="No persistent home: files in the home are lost at every stop (persistentHomeSize 0).")
@click.option("--time", "time_to_live", type=DURATION, metavar="DURATION",
              help="Lifetime from now, e.g. 30m, 4h, 1h30m, 2d (default and most: the flavor's maximum; more "
                   "is refused).")
@click.option("--idle-timeout", type=DURATION, metavar="DURATION", help="Stop after this long without activity, e.g. 1h.")
@click.option("--auto-shutdown/--no-auto-shutdown", default=True, show_default=True,
              help="Stop the server when it is idle.")
@click.option("--expires", metavar="TIME", help="Delete at this time (RFC 3339), e.g. 2026-12-01T18:00:00Z.")
@click.option("--shared-volume", metavar="CLAIM", help="Existing PersistentVolumeClaim to mount at /shared.")
@click.option("--distributed", is_flag=True, help="A torchrun group of pods instead of one pod.")
@click.option("--world-size", type=click.IntRange(1), help="Pods in the group (--distributed; default 2).")
@click.option("--nprocs-per-node", callback=lambda ctx, param, value: _nprocs(value), metavar="N|auto",
              help="Processes per pod, usually GPUs per pod; auto: the flavor's GPU count, or 1 without GPUs "
                   "(--distributed; default 1).")
@click.option("--backend", type=click.Choice(["nccl", "gloo"]),
              help="torch.distributed backend (--distributed; default nccl, gloo for CPU).")
@click.option("--nccl", "nccl_settings", multiple=True, metavar="KEY=VALUE", callback=key_values("NCCL_DEBUG=INFO"),
              help="NCCL setting for every pod, e.g. NCCL_DEBUG=INFO (--distributed; repeatable).")
@click.option("--mlflow", "mlflow_uri", metavar="URI",
              help="MLflow tracking server for the pods (MLFLOW_TRACKING_URI), e.g. https://mlflow.example.com "
                   "(default: the namespace's devservers-defaults).")
@click.option("--mlflow-experiment", metavar="NAME", help="MLflow experiment (--mlflow; default: the DevServer's name).")
@click.option("--mlflow-secret", metavar="SECRET",
              help="Secret with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN "
                   "(--mlflow).")
@click.option("--wandb-project", metavar="PROJECT", help="Weights & Biases project for the pods (WANDB_PROJECT).")
@click.option("--wandb-entity", metavar="ENTITY", help="W&B team or user (--wandb-project).")
@click.option("--wandb-secret", metavar="SECRET", help="Secret with WANDB_API_KEY (required with --wandb-project).")
@click.option("--wait", is_flag=True, help="Wait until it runs, showing progress.")
@timeout_option()
@output_option(WRITE_FORMATS, default=None)
@cluster_options
@click.pass_context
def create(ctx: click.Context, name: str, flavor: str, image: str | None, home_size: str | None,
           no_home: bool, time_to_live: str | None, idle_timeout: str | None, auto_shutdown: bool, expires: str | None,
           shared_volume: str | None, distributed: bool, world_size: int | None,
           nprocs_per_node: int | Literal["auto"] | None,
           backend: str | None, nccl_settings: dict[str, str], mlflow_uri: str | None,
           mlflow_experiment: str | None, mlflow_secret: str | None, wandb_project: str | None,
           wandb_entity: str | None, wandb_secret: str | None, wait: bool, timeout: float,
           output: str | None) -> None:
    """Create a DevServer NAME sized by a flavor.

    With --wait, shows its progress until it runs and then how to connect; it exits 1 if the server
    fails or the wait times out. --mlflow and --wandb-project send the pods' experiment runs somewhere
    else than the namespace's defaults; credentials are named by Secret, never typed.

    \b
    Examples:
      devctl create mydev --flavor cpu-small --time 4h --wait
      devctl create big --flavor gpu-small --home-size 100Gi --idle-timeout 1h
      devctl create ddp --flavor gpu-large --distributed --world-size 2 --nprocs-per-node auto \\
          --nccl NCCL_DEBUG=INFO --wait
      devctl create exp --flavor gpu-small --mlflow https://mlflow.example.com --mlflow-secret mlflow-creds \\
          --wandb-project llm --wandb-secret wandb-key
    """
    # --world-size and the like without --distributed are refused by the SDK (DevServerSpec.from_options), in
    # the same words as the magics and the widgets.
    if no_home and home_size is not None:
        raise click.UsageError("--no-home and --home-size contradict each other; pass one of them.")
    if no_home:
        home_size = "0"
    tracking = _tracking_options(mlflow_uri, mlflow_experiment, mlflow_secret, wandb_project, wandb_entity,
                                 wandb_secret)
    where = target(ctx)
    with where.client() as client:
        server = client.create(
            name, flavor=flavor, image=image, mode="distributed" if distributed else "standalone",
            world_size=world_size, nprocs_per_node=nprocs_per_node, backend=cast(Backend, backend),
            nccl_settings=nccl_settings or None, home_size=home_size, shared_volume=shared_volume,
            time_to_live=time_to_live, idle_timeout=idle_timeout, auto_shutdown=auto_shutdown,
            expiration_time=expires, tracking=tracking)
        if output is None:
            lifetime = client.lifetime(server).describe(views.now())
            click.echo(f"DevServer '{name}' created in {_where(client)} (flavor {flavor}); it {lifetime}.")
        if wait:
            server = _wait(client, name, for_phase="Running", timeout=timeout)
    if output is not None:
        _show([server], output, views.DEVSERVER, single=True)
    elif wait:
        click.echo(_running(server, where.flags()))
    else:
        click.echo(f"Wait for it with: devctl wait {name}{where.flags()}; then connect with: "
                   f"devctl shell {name}{where.flags()}")


def _tracking_options(mlflow_uri: str | None, mlflow_experiment: str | None, mlflow_secret: str | None,
                      wandb_project: str | None, wandb_entity: str | None,
                      wandb_secret: str | None) -> dict[str, dict[str, str]] | None:
    """spec.tracking from create's flags; a flag that needs another one is a usage error naming both."""
    if mlflow_uri is None and (mlflow_experiment or mlflow_secret):
        given = "--mlflow-experiment" if mlflow_experiment else "--mlflow-secret"
        raise click.UsageError(f"{given} needs --mlflow URI (the tracking server it belongs to).")
    if (wandb_project is None) != (wandb_secret is None):
        raise click.UsageError("--wandb-project and --wandb-secret go together: W&B needs the Secret holding "
                               "WANDB_API_KEY (kubectl create secret generic NAME --from-literal=WANDB_API_KEY=...).")
    if wandb_entity and wandb_project is None:
        raise click.UsageError("--wandb-entity needs --wandb-project and --wandb-secret.")
    tracking: dict[str, dict[str, str]] = {}
    if mlflow_uri is not None:
        mlflow = {"trackingUri": mlflow_uri, "experiment": mlflow_experiment, "credentialsSecret": mlflow_secret}
        tracking["mlflow"] = {key: value for key, value in mlflow.items() if value}
    if wandb_project is not None and wandb_secret is not None:
        wandb = {"project": wandb_project, "entity": wandb_entity, "apiKeySecret": wandb_secret}
        tracking["wandb"] = {key: value for key, value in wandb.items() if value}
    return tracking or None


# -- list, describe --------------------------------------------------------------------------------------

@click.command("list")
@click.option("-A", "--all-namespaces", is_flag=True, help="List DevServers in every namespace.")
@click.option("--owner", metavar="USER", help="Only the DevServers of this owner.")
@output_option()
@cluster_options
@click.pass_context
def list_devservers(ctx: click.Context, all_namespaces: bool, owner: str | None, output: str) -> None:
    """List DevServers: owner, flavor, phase, time left.

    \b
    Examples:
      devctl list
      devctl list -A --owner alice
      devctl list -o name          # devserver.devservers.io/NAME, for scripts
    """
    where = target(ctx)
    found = _list_quickly(where, owner, all_namespaces) if output in QUICK_LIST_FORMATS else None
    if found is None:
        with where.client() as client:
            found = client.namespace, client.list(owner=owner, all_namespaces=all_namespaces)
    namespace, servers = found
    if not servers and output in ("table", "wide"):
        scope = "any namespace" if all_namespaces else f"namespace '{namespace}'"
        mine = f" owned by '{owner}'" if owner else ""
        click.echo(f"No DevServers{mine} found in {scope}. Create one with: devctl create NAME "
                   f"--flavor FLAVOR (see: devctl flavors)", err=True)
    _show(servers, output, views.DEVSERVER, namespaces=all_namespaces)


@click.command("cost")
@click.option("-A", "--all-namespaces", is_flag=True, help="Count DevServers in every namespace.")
@click.option("--owner", metavar="USER", help="Only the DevServers of this owner.")
@click.option("--since", type=DURATION, metavar="DURATION",
              help="Only running time in this last stretch, e.g. 7d, 24h (default: all that is recorded).")
@output_option(("table", "json"))
@cluster_options
@click.pass_context
def cost(ctx: click.Context, all_namespaces: bool, owner: str | None, since: str | None, output: str) -> None:
    """What DevServers have cost, per owner and flavor, deleted ones included.

    Counts each pod-hour of running time at its flavor's costPerHour (stopped time is free): live servers
    up to now, deleted ones from the cost ledger the operator keeps in each namespace (the ConfigMap
    devservers-cost-ledger; at most 300 servers and 90 days after deletion per namespace).

    \b
    Examples:
      devctl cost
      devctl cost -A --since 7d
      devctl cost --owner alice -o json
    """
    import json as json_module

    from devservers_sdk.cost import format_money

    with target(ctx).client() as client:
        rows = client.cost_report(all_namespaces=all_namespaces, owner=owner, since=since)
        namespace = client.namespace
    if output == "json":
        click.echo(json_module.dumps({"since": since, "namespace": None if all_namespaces else namespace,
                                      "rows": [row.to_json() for row in rows]}, indent=2))
        return
    if not rows:
        scope = "any namespace" if all_namespaces else f"namespace '{namespace}'"
        click.echo(f"No cost recorded in {scope}{' for ' + owner if owner else ''}: flavors without a "
                   "costPerHour cost nothing.", err=True)
        return
    lines = [[row.owner, row.flavor, f"{len(row.servers)}" + (f" ({row.deleted} deleted)" if row.deleted else ""),
              f"{row.pod_hours}", format_money(row.amount, row.currency)] for row in rows]
    totals: dict[str | None, Any] = {}
    for row in rows:
        totals[row.currency] = totals.get(row.currency, 0) + row.amount
    lines += [["TOTAL", "", "", "", format_money(amount, currency)] for currency, amount in totals.items()]
    click.echo(views.table(["OWNER", "FLAVOR", "SERVERS", "POD-HOURS", "COST"], lines))


def _list_quickly(where: Target, owner: str | None, all_namespaces: bool) -> tuple[str, list[Any]] | None:
    """The namespace and the DevServer manifests, read without the kubernetes client or pydantic.

    ``None`` when only the SDK's client can do this read faithfully (exec credentials, a proxy, an error to
    report...): the caller then reads again with it, so failures are worded and retried in one place. The
    fallback happens outside this ``except``, so that ``--debug`` shows the client's traceback alone.
    """
    from devservers_sdk.errors import FullClientRequired
    from devservers_sdk.lightweight_read import list_devservers

    try:
        listing = list_devservers(namespace=where.namespace, context=where.context, kubeconfig=where.kubeconfig,
                                  owner=owner, all_namespaces=all_namespaces)
    except FullClientRequired:
        return None
    return listing.namespace, listing.items


@click.command()
@name_argument()
@output_option()
@cluster_options
@click.pass_context
def describe(ctx: click.Context, name: str, output: str) -> None:
    """Show a DevServer: spec, status, pods, events.

    Shows the spec, the status with its conditions, the lifecycle (expires at, idle for, why it
    stopped), the pods of every rank and the recent events.

    \b
    Examples:
      devctl describe mydev
      devctl describe mydev -o yaml
    """
    with target(ctx).client() as client:
        description = client.describe(name)
    _show([description], output, views.DESCRIPTION, single=True)


# -- shell, logs -----------------------------------------------------------------------------------------

@click.command(context_settings={"ignore_unknown_options": True})
@name_argument()
@click.option("--rank", type=click.IntRange(0), default=0, show_default=True,
              help="Which pod of a distributed DevServer.")
@click.option("-t", "--tty", is_flag=True, help="Run the command in a terminal (interactive programs).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- COMMAND...]")
@cluster_options
@click.pass_context
def shell(ctx: click.Context, name: str, rank: int, tty: bool, command: tuple[str, ...]) -> None:
    """Open a shell in a DevServer, or run one command there.

    Without a command: an interactive shell on your terminal, with the container's environment and PATH
    (Ctrl-C goes to the remote side;
    exit leaves with the shell's exit code). With a command after --: its output is streamed as it
    comes and devctl exits with the command's exit code; piped input is passed to it. Add -t for
    interactive programs (a terminal, as ssh -t).

    \b
    Examples:
      devctl shell mydev
      devctl shell mydev -- python train.py
      devctl shell ddp --rank 1 -- nvidia-smi
      devctl shell mydev -- tar xz -C /tmp < data.tgz
    """
    argv = list(command)
    with target(ctx).client() as client:
        if argv and not tty:
            ctx.exit(_stream(client, name, rank, argv))
        if not _has_terminal_fds():
            raise click.UsageError("An interactive shell needs real standard input and output; pass the "
                                   "command to run after --, e.g. devctl shell NAME -- python train.py")
        ctx.exit(client.shell(name, rank=rank, command=argv or None))


def _has_terminal_fds() -> bool:
    try:
        sys.stdin.fileno()
        sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _stream(client: DevServerClient, name: str, rank: int, argv: list[str]) -> int:
    """Run ``argv`` with its output streamed to ours; our stdin goes to it unless it is a terminal."""
    from devservers_sdk.errors import ExecError

    stdin = None if stdin_is_terminal() else getattr(sys.stdin, "buffer", sys.stdin)
    # The binary side of our own streams (click's get_binary_stream is typed differently across releases).
    outputs = {name: cast("BinaryIO", getattr(stream, "buffer", stream))
               for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr))}
    try:
        with client.exec_stream(name, argv, rank=rank, stdin=stdin, text=False) as run:
            for stream, chunk in run:
                out = outputs[stream]
                out.write(chunk if isinstance(chunk, bytes) else chunk.encode())
                out.flush()
    except ExecError as exc:  # the command could not start: report it, with the shell's exit code
        click.echo(f"Error: {exc}", err=True)
        return exc.returncode if exc.returncode and exc.returncode > 0 else 1
    return run.returncode if run.returncode is not None else 1


@click.command()
@name_argument()
@click.option("--rank", type=click.IntRange(0), default=0, show_default=True,
              help="Which pod of a distributed DevServer.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the container stops.")
@click.option("--tail", type=click.IntRange(0), metavar="N", help="Only the last N lines.")
@click.option("-p", "--previous", is_flag=True, help="The log of the container's previous run (after a crash).")
@cluster_options
@click.pass_context
def logs(ctx: click.Context, name: str, rank: int, follow: bool, tail: int | None, previous: bool) -> None:
    """Print the logs of a DevServer's pod.

    \b
    Examples:
      devctl logs mydev
      devctl logs ddp --rank 1 -f --tail 20
      devctl logs mydev --previous     # what it printed before it crashed
    """
    with target(ctx).client() as client:
        lines = client.logs(name, rank=rank, follow=follow, tail=tail, previous=previous)
        printed = False
        try:
            for line in lines:
                click.echo(line)
                printed = True
        finally:
            lines.close()
        if not printed:
            click.echo(client.no_logs_message(name, rank=rank), err=True)


# -- lifecycle -------------------------------------------------------------------------------------------

@click.command()
@name_argument(nargs=-1)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait", is_flag=True, help="Wait until the DevServers and their volumes are gone.")
@timeout_option("5m")
@cluster_options
@click.pass_context
def delete(ctx: click.Context, names: tuple[str, ...], yes: bool, wait: bool, timeout: float) -> None:
    """Delete DevServers with their pods and volumes.

    Asks for confirmation when run from a terminal, unless --yes is given. As kubectl does, a name
    that does not exist is reported and the others are still deleted (the exit status is then 1).

    \b
    Examples:
      devctl delete mydev
      devctl delete mydev ddp --yes --wait
    """
    from devservers_sdk.errors import DevServerNotFoundError

    missing = False
    with target(ctx).client() as client:
        if not yes and stdin_is_terminal():
            listed = ", ".join(f"'{name}'" for name in names)
            click.confirm(f"Delete DevServer {listed} in {_where(client)}, with its home volumes?", abort=True)
        for name in names:
            try:
                client.delete(name, wait=wait, timeout=timeout)
            except DevServerNotFoundError as exc:
                click.echo(f"Error: {exc}", err=True)
                missing = True
                continue
            click.echo(f"DevServer '{name}' deleted{' and its volumes are gone' if wait else ''}.")
    if missing:
        ctx.exit(1)


@click.command()
@name_argument()
@click.option("--time", "by", required=True, type=DURATION, metavar="DURATION", help="How much longer, e.g. 2h, 30m, 1d.")
@output_option(WRITE_FORMATS, default=None)
@cluster_options
@click.pass_context
def extend(ctx: click.Context, name: str, by: str, output: str | None) -> None:
    """Push back the expiry of a DevServer.

    The new expiry is the current one (or now, if later) plus --time. Passing the flavor's maximum
    lifetime is refused, with that maximum and how much can still be added.

    \b
    Example:
      devctl extend mydev --time 2h
    """
    with target(ctx).client() as client:
        server = client.extend(name, by=by)
        if output is None:
            click.echo(f"DevServer '{name}' now {client.lifetime(server).describe(views.now())}.")
    if output is not None:
        _show([server], output, views.DEVSERVER, single=True)


@click.command()
@name_argument()
@click.option("--flavor", metavar="FLAVOR", shell_complete=complete_flavor, help="The new flavor, from `devctl flavors`.")
@click.option("--image", metavar="IMAGE", help="The new container image.")
@output_option(WRITE_FORMATS, default=None)
@cluster_options
@click.pass_context
def update(ctx: click.Context, name: str, flavor: str | None, image: str | None, output: str | None) -> None:
    """Change the flavor or image of a DevServer.

    Its pods restart with the change.

    \b
    Examples:
      devctl update mydev --flavor cpu-large
      devctl update mydev --image pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel
    """
    if flavor is None and image is None:
        raise click.UsageError("Nothing to update: pass --flavor and/or --image.")
    where = target(ctx)
    with where.client() as client:
        server = client.update(name, flavor=flavor, image=image)
    if output is not None:
        _show([server], output, views.DEVSERVER, single=True)
        return
    changed = ", ".join(f"{what} {value}" for what, value in (("flavor", flavor), ("image", image)) if value)
    click.echo(f"DevServer '{name}' updated: {changed}. Its pods restart; follow with: "
               f"devctl wait {name}{where.flags()}")


@click.command()
@name_argument()
@click.option("--wait", is_flag=True, help="Wait until its pods are gone.")
@timeout_option("5m")
@cluster_options
@click.pass_context
def stop(ctx: click.Context, name: str, wait: bool, timeout: float) -> None:
    """Stop a DevServer, keeping its home volumes.

    Its pods go away; its home volumes and settings stay until it is started again or expires (a server
    created with --no-home has no home volume: its files are lost).

    \b
    Example:
      devctl stop mydev --wait
    """
    from devservers_sdk.lifecycle import home_note

    where = target(ctx)
    with where.client() as client:
        server = client.stop(name)
        if wait:
            server = _wait(client, name, for_phase="Stopped", timeout=timeout)
    state = "stopped" if wait else "stopping"
    kept = home_note(server.spec, server.status.home_size)
    click.echo(f"DevServer '{name}' is {state}; {kept}. Start it again with: devctl start {name}{where.flags()}")


@click.command()
@name_argument()
@click.option("--wait", is_flag=True, help="Wait until it runs, showing progress.")
@timeout_option()
@cluster_options
@click.pass_context
def start(ctx: click.Context, name: str, wait: bool, timeout: float) -> None:
    """Start a stopped DevServer again.

    \b
    Example:
      devctl start mydev --wait
    """
    where = target(ctx)
    with where.client() as client:
        server = client.start(name)
        if wait:
            server = _wait(client, name, for_phase="Running", timeout=timeout)
    if wait:
        click.echo(_running(server, where.flags()))
    else:
        click.echo(f"DevServer '{name}' is starting. Wait for it with: devctl wait {name}{where.flags()}")


@click.command()
@name_argument()
@click.option("--for", "for_phase", type=click.Choice(PHASES, case_sensitive=False), default="Running",
              show_default=True, help="The phase to wait for, or 'deleted'.")
@timeout_option()
@output_option(WRITE_FORMATS, default=None)
@cluster_options
@click.pass_context
def wait(ctx: click.Context, name: str, for_phase: str, timeout: float, output: str | None) -> None:
    """Wait until a DevServer reaches a phase.

    Shows its progress; exits 1 if it fails or the timeout passes.

    \b
    Examples:
      devctl wait mydev
      devctl wait mydev --for Stopped --timeout 2m
      devctl wait mydev --for deleted
    """
    from devservers_sdk.errors import DevServerNotFoundError

    phase = next(p for p in PHASES if p.lower() == for_phase.lower())
    with target(ctx).client() as client:
        if phase == "deleted":
            try:
                _wait(client, name, for_phase=None, timeout=timeout)
            except DevServerNotFoundError:
                click.echo(f"DevServer '{name}' is gone from {_where(client)}.")
                return
            raise AssertionError("wait(for_phase=None) returns only by raising")  # pragma: no cover
        server = _wait(client, name, for_phase=phase, timeout=timeout)
    if output is not None:
        _show([server], output, views.DEVSERVER, single=True)
    else:
        click.echo(f"DevServer '{name}' is {server.status.phase} ({views.ready(server)} ready).")


COMMANDS = [flavors, create, list_devservers, cost, describe, shell, logs, delete, extend, update, stop, start, wait]

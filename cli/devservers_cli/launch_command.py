"""``devctl launch``: torchrun on every rank of a distributed DevServer, every rank's output in one terminal.

Parse, one ``client.launch`` call, then render each ``(rank, stream, line)`` as ``[rank N] line`` on our
stdout or stderr (the rank's stream), and end with one summary line. Choices worth knowing:

* **The launch is a context manager here.** Whatever ends the command (Ctrl-C, a closed pipe in
  ``devctl launch ... | head``, a bug) leaves the ``with`` block, which stops every rank: a torchrun group
  left running on a GPU node after devctl is gone would be the worst way to fail.
* **Exit status: the failing script's own.** A script that ends with ``sys.exit(3)`` on one rank makes
  devctl exit 3, as ``devctl shell NAME -- python train.py`` would. torchrun itself exits 1 for any
  failed worker, so the worker's code from torchrun's report wins over the rank's; a death by signal N
  becomes 128+N (the shell's convention); a ``--timeout`` exits 124 (``timeout(1)``'s); Ctrl-C 130.
* **Colour only on terminals.** Escape codes in a log file or a pipe are noise. Each of stdout and stderr
  is decided on its own, and ``NO_COLOR`` (https://no-color.org) or ``TERM=dumb`` turn colour off.
* **The summary and our own messages go to stderr** (the house rule: commentary on stderr), so the
  ranks' stdout lines are all that stdout carries.

Only Click is imported with this module; the SDK comes in when the command runs (see ``main.py``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, Literal

import click

from .options import SECONDS, cluster_options, key_values, name_argument, output_option, target

if TYPE_CHECKING:
    from devservers_sdk.errors import LaunchFailedError
    from devservers_sdk.launch import LaunchHandle, LaunchLine

__all__ = ["exit_status", "launch", "summary", "use_colour"]

EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130
# Distinct, readable on dark and light backgrounds; red is left for errors.
RANK_COLOURS = ("cyan", "green", "yellow", "magenta", "blue", "bright_cyan", "bright_green", "bright_yellow",
                "bright_magenta", "bright_blue")


class NprocsPerNode(click.ParamType):
    """A number of processes >= 1, or one of torchrun's ``auto``, ``cpu``, ``gpu``."""

    name = "nprocs"
    WORDS = ("auto", "cpu", "gpu")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or value in self.WORDS:
            return value
        text = str(value).strip()
        if text.isdigit() and int(text) >= 1:
            return int(text)
        self.fail(f"expected a number of processes >= 1, or auto, cpu or gpu; got {value!r}", param, ctx)


class LaunchCommand(click.Command):
    """Points at ``--`` when an option of the user's command was taken for one of devctl's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            hint = " Options of the command go after --, e.g. devctl launch NAME -- python train.py --epochs 3"
            raise click.NoSuchOption(exc.option_name, message=exc.message + hint, possibilities=exc.possibilities,
                                     ctx=exc.ctx) from exc


def use_colour(stream: IO[Any], environ: Mapping[str, str] = os.environ) -> bool:
    """Whether to colour what goes to ``stream``: only a terminal, and neither NO_COLOR nor TERM=dumb."""
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real file
        return False


def prefix(event: LaunchLine, *, colour: bool) -> str:
    """``[rank 3]`` (the global rank of the process that printed the line), coloured by it on a terminal."""
    text = event.label
    rank = event.global_rank if event.global_rank is not None else event[0]
    return click.style(text, fg=RANK_COLOURS[rank % len(RANK_COLOURS)]) if colour else text


def exit_status(error: LaunchFailedError) -> int:
    """devctl's exit status for a failed launch (see the module docstring)."""
    from devservers_sdk.errors import LaunchTimeoutError

    if isinstance(error, LaunchTimeoutError):
        return EXIT_TIMEOUT
    code = error.worker_exitcode if error.worker_exitcode else error.returncode
    if code is None or code in (0, -1):  # -1: the rank's connection was lost, no status was reported
        return 1
    if code < 0:
        return 128 - code
    return code if code <= 255 else 1


def summary(name: str, returncodes: Mapping[int, int | None], *, outcome: str, failed_rank: int | None,
            seconds: float) -> str:
    """One line: how the launch ended, each rank's exit status, the wall time.

    ``outcome`` is ``succeeded``, ``failed``, ``timed out`` or ``cancelled``; after a failure or a cancel,
    ranks that ended non-zero other than ``failed_rank`` were stopped by the launch and say so.
    """
    parts = []
    for rank, code in sorted(returncodes.items()):
        if code is None:
            parts.append(f"rank {rank} still running")
            continue
        part = f"rank {rank} exit {code}"
        if rank == failed_rank:
            part += " (failed first)"
        elif code != 0 and outcome != "succeeded":
            part += " (stopped)"
        parts.append(part)
    return f"launch on '{name}' {outcome}: {', '.join(parts)}; wall time {seconds:.1f}s"


def headline(error: LaunchFailedError) -> str:
    """The SDK's sentence without the failing rank's last lines: they were just printed with its prefix."""
    return str(error).split(" Last output of rank", 1)[0]


def _follow(handle: LaunchHandle) -> None:
    colour = {"stdout": use_colour(sys.stdout), "stderr": use_colour(sys.stderr)}
    for event in handle:
        _, stream, line = event
        click.echo(f"{prefix(event, colour=colour[stream])} {line}", err=stream == "stderr", color=colour[stream])
    handle.wait()


@click.command(cls=LaunchCommand, short_help="Run torchrun on every rank of a distributed DevServer.")
@name_argument()
@click.option("--nprocs-per-node", type=NprocsPerNode(), metavar="N",
              help="Processes per pod (default: the DevServer's nprocsPerNode); also auto, cpu or gpu.")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", callback=key_values("NCCL_DEBUG=INFO"),
              help="An environment variable for every process (repeatable).")
@click.option("--workdir", metavar="LOCAL_DIR", type=click.Path(exists=True, file_okay=False),
              help="Upload this local directory (your code) to every pod first, only what changed, into "
                   "~/<its name>, and run there (as devctl sync).")
@click.option("--cwd", metavar="DIR", help="Directory of the pods to run in (default: the uploaded --workdir, "
                                           "else the pod's working directory, normally the home).")
@click.option("--timeout", type=SECONDS, default=None, metavar="DURATION",
              help="Stop every rank after this long (e.g. 30m, 2h; default: no limit) and exit 124.")
@click.option("--resume", is_flag=True,
              help="Continue from the newest checkpoint on rank 0 (devctl checkpoints NAME): every process gets "
                   "DEVSERVERS_RESUME_FROM and DEVSERVERS_RESUME_STEP, which CheckpointManager.resume() loads.")
@click.option("--checkpoint-dir", metavar="DIR",
              help="Where the script's checkpoints are in the pods (default ~/checkpoints); passed on as "
                   "DEVSERVERS_CHECKPOINT_DIR.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- COMMAND...")
@cluster_options
@click.pass_context
def launch(ctx: click.Context, name: str, nprocs_per_node: int | Literal["auto", "cpu", "gpu"] | None,
           env: dict[str, str], workdir: str | None, cwd: str | None, timeout: float | None, resume: bool,
           checkpoint_dir: str | None, command: tuple[str, ...]) -> None:
    """Run torchrun on every rank of a distributed DevServer, with every rank's output here.

    The command is the script and its arguments (`python train.py ...`, `train.py ...`, `-m pkg.mod`);
    torchrun takes the group's shape from the DevServer. Each line is prefixed with its rank
    (`[rank 1] ...`, coloured on a terminal), stderr lines go to stderr, and a summary line ends the run.
    With --workdir . your code goes along (only what changed since the last time); otherwise the
    script must already be on every pod (home volume, shared volume or image).

    If a rank fails, the others are stopped and devctl exits with the failing script's exit code
    (124 after --timeout); Ctrl-C stops every rank and exits 130.

    \b
    Examples:
      devctl launch ddp --workdir . -- python train.py --epochs 3
      devctl launch ddp --nprocs-per-node 1 -e NCCL_DEBUG=INFO -- train.py
      devctl launch ddp --cwd /shared/project --timeout 2h -- -m project.train
      devctl launch ddp --resume -- python train.py      # after an interruption or a stop
    """
    if not command:
        raise click.UsageError("Give the command to run after --, e.g. "
                               f"devctl launch {name} -- python train.py --epochs 3")
    from devservers_sdk.errors import LaunchFailedError, LaunchTimeoutError

    started = time.monotonic()
    handle: LaunchHandle | None = None

    def report(outcome: str, failed_rank: int | None = None) -> None:
        if handle is not None:
            click.echo(summary(name, handle.returncodes, outcome=outcome, failed_rank=failed_rank,
                               seconds=time.monotonic() - started), err=True)

    try:
        with target(ctx).client() as client, \
                client.launch(name, list(command), nprocs_per_node=nprocs_per_node, env=env or None,
                              workdir=workdir, cwd=cwd, timeout=timeout, resume=resume,
                              checkpoint_dir=checkpoint_dir) as handle:
            if resume:
                resumed = handle.resumed_from
                click.echo(f"Resuming from step {resumed.step} ({resumed.path})" if resumed is not None else
                           "No checkpoint yet on rank 0: starting from the beginning", err=True)
            _follow(handle)
    except LaunchFailedError as error:
        click.echo(f"Error: {headline(error)}", err=True)
        report("timed out" if isinstance(error, LaunchTimeoutError) else "failed", error.rank)
        ctx.exit(exit_status(error))
    except KeyboardInterrupt:
        # The iteration (or leaving the with block) has stopped every rank by now.
        click.echo("", err=True)
        click.echo(f"Interrupted: every rank of the launch on DevServer '{name}' was stopped.", err=True)
        report("cancelled")
        ctx.exit(EXIT_INTERRUPTED)
    report("succeeded")


@click.command(short_help="List the training checkpoints of a DevServer.")
@name_argument()
@click.option("--rank", type=click.IntRange(min=0), default=0, show_default=True,
              help="The pod to look in (rank 0 holds DDP checkpoints).")
@click.option("--dir", "directory", metavar="DIR",
              help="The checkpoint directory in the pod (default: DEVSERVERS_CHECKPOINT_DIR, else ~/checkpoints).")
@output_option(("table", "json", "yaml", "name"))
@cluster_options
@click.pass_context
def checkpoints(ctx: click.Context, name: str, rank: int, directory: str | None, output: str) -> None:
    """List the checkpoints devservers_sdk.checkpoint.CheckpointManager saved: step, time, size, rank layout.

    Only complete checkpoints are listed (a save cut short by a crash or a reclaimed node never is).
    `devctl launch NAME --resume -- ...` continues from the newest.

    \b
    Examples:
      devctl checkpoints ddp
      devctl checkpoints ddp --dir /shared/ckpt -o json
    """
    from . import render as views

    with target(ctx).client() as client:
        listing = client.checkpoints(name, rank=rank, directory=directory)
    if not listing.checkpoints and output == "table":
        click.echo(f"No checkpoints in {listing.directory} on rank {rank} of DevServer '{name}'.", err=True)
        return
    text = views.render(listing.checkpoints, output, views.CHECKPOINT)
    if text:
        click.echo(text)

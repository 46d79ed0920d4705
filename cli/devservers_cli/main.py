"""``devctl``: the group, its global options, and the one place where failures become messages.

Every ``DevServerError`` becomes one line, ``Error: <message>`` (the SDK's messages name the object and
the next step), and exit status 1; usage errors exit 2 (Click's convention, as kubectl's); Ctrl-C exits
130 without a traceback. ``--debug`` adds the traceback. An unexpected exception is a bug: it is shown as
one line too, with the hint to rerun with ``--debug``.

Only Click is imported at start-up; the SDK (and with it pydantic and the kubernetes client) is imported
by the commands that talk to a cluster, so ``devctl --help`` and completion of command names stay fast.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from .commands import COMMANDS
from .connect_commands import CONNECT_COMMANDS
from .launch_command import checkpoints, launch
from .local import local
from .options import cluster_options, target
from .ui_command import ui

_EXIT_INTERRUPTED = 130


class DevctlGroup(click.Group):
    """Commands listed in the order a newcomer meets them, and failures turned into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("", err=True)
            ctx.exit(_EXIT_INTERRUPTED)
        except BrokenPipeError:  # `devctl list | head`: the reader left, which is not an error
            _silence_stdout()
            ctx.exit(1)
        except Exception as exc:
            _fail(ctx, exc)


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _fail(ctx: click.Context, exc: Exception) -> NoReturn:
    from devservers_sdk.errors import DevServerError

    if target(ctx).debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, DevServerError):
        click.echo(f"Error: {exc}", err=True)
    else:
        hint = "" if target(ctx).debug else " Rerun with --debug for the traceback"
        click.echo(f"Error: unexpected {type(exc).__name__}: {exc}.{hint} (and please report it).", err=True)
    ctx.exit(1)


@click.group(cls=DevctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@cluster_options
@click.version_option(package_name="devservers", prog_name="devctl", message="%(prog)s %(version)s")
def cli() -> None:
    """devctl: personal PyTorch dev servers on Kubernetes.

    Pick a size with `devctl flavors`, create a server, open a shell in it, and let it clean up after
    itself. No cluster? `devctl local up` starts one on this machine.

    \b
    Examples:
      devctl local up
      devctl create mydev --flavor cpu-small --time 4h --wait
      devctl shell mydev
      devctl list
      devctl delete mydev

    \b
    Shell completion (bash; zsh and fish likewise):
      eval "$(_DEVCTL_COMPLETE=bash_source devctl)"
    """


for _command in COMMANDS:
    cli.add_command(_command)
for _command in CONNECT_COMMANDS:
    cli.add_command(_command)
cli.add_command(launch)
cli.add_command(checkpoints)
cli.add_command(local)
cli.add_command(ui)


def main() -> None:
    """The console script (``devctl``) and ``python -m devservers_cli``."""
    cli(prog_name="devctl")

"""Commands that connect to a DevServer: port-forward, cp, sync, ssh-config, ssh-proxy, code, jupyter.

Each is parse, one SDK call (``devservers_sdk.connect`` does the work), render. Long-running ones
(``port-forward``, ``jupyter``) print where to connect, then wait for Ctrl-C, which ends them cleanly.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING

import click

from .options import cluster_options, name_argument, target

if TYPE_CHECKING:
    from devservers_sdk.connect.portforward import PortForward


def _port_pair(text: str) -> tuple[int, int]:
    local_text, sep, remote_text = text.rpartition(":")
    try:
        remote = int(remote_text)
        pair = ((int(local_text) if local_text else 0) if sep else remote, remote)
    except ValueError:
        raise click.BadParameter(f"expected [LOCAL:]REMOTE such as 8888 or 9000:8888 or :8888, got {text!r}",
                                 param_hint="PORT") from None
    if not 0 < pair[1] < 65536 or not 0 <= pair[0] < 65536:
        raise click.BadParameter(f"ports are 1-65535 (local 0: any free port), got {text!r}", param_hint="PORT")
    return pair


def _wait_for_interrupt(forwards: list[PortForward]) -> None:
    try:
        forwards[0].wait()
    except KeyboardInterrupt:
        click.echo("", err=True)
    finally:
        for forward in forwards:
            forward.close()


# -- port-forward ----------------------------------------------------------------------------------------

@click.command("port-forward")
@name_argument()
@click.argument("ports", nargs=-1, required=True, metavar="[LOCAL:]REMOTE...")
@click.option("--rank", type=click.IntRange(0), default=0, show_default=True,
              help="Which pod of a distributed DevServer.")
@click.option("--address", default="127.0.0.1", show_default=True, metavar="ADDR",
              help="Local address to listen on (0.0.0.0: every interface).")
@cluster_options
@click.pass_context
def port_forward(ctx: click.Context, name: str, ports: tuple[str, ...], rank: int, address: str) -> None:
    """Forward local ports to ports of a DevServer, until Ctrl-C.

    Like kubectl port-forward: 8888 listens on local 8888, 9000:8888 on local 9000, :8888 on any free
    local port (printed). Many connections at once are fine; one the server refuses is reported and the
    forward goes on. An open forward counts as activity (idle shutdown waits).

    \b
    Examples:
      devctl port-forward mydev 6006                 # TensorBoard on http://127.0.0.1:6006
      devctl port-forward mydev 9000:8888 :5000
      devctl port-forward ddp 29500 --rank 1 --address 0.0.0.0
    """
    pairs = [_port_pair(text) for text in ports]

    def on_error(message: str) -> None:
        click.echo(f"error: {message}", err=True)

    with target(ctx).client() as client:
        forwards: list[PortForward] = []
        try:
            for local, remote in pairs:
                forward = client.port_forward(name, remote, local_port=local, rank=rank, address=address,
                                              on_error=on_error)
                forwards.append(forward)
                host = f"[{forward.address.host}]" if ":" in forward.address.host else forward.address.host
                click.echo(f"Forwarding from {host}:{forward.address.port} -> {remote}")
        except BaseException:
            for forward in forwards:
                with contextlib.suppress(Exception):
                    forward.close()
            raise
        sys.stdout.flush()
        _wait_for_interrupt(forwards)


CONNECT_COMMANDS = [port_forward]

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


# -- cp, sync --------------------------------------------------------------------------------------------

def _remote(text: str) -> tuple[str, str] | None:
    """``NAME:/path`` as (NAME, path); None for a local path (``./a:b``, ``/x:y`` and ``C:`` stay local)."""
    name, sep, path = text.partition(":")
    if not sep or not name or "/" in name or name in (".", ".."):
        return None
    return name, path or "~"


@click.command("cp")
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.option("--rank", type=click.IntRange(0), default=0, show_default=True,
              help="Which pod of a distributed DevServer.")
@click.option("--all-ranks", is_flag=True, help="Copy to every pod of a distributed DevServer.")
@cluster_options
@click.pass_context
def cp(ctx: click.Context, source: str, destination: str, rank: int, all_ranks: bool) -> None:
    """Copy files and directories between this machine and a DevServer, keeping modes.

    One side is NAME:PATH (PATH in the pod; ~ is its home), as in kubectl cp. Like cp -r: into DST when it
    is a directory, else to DST itself.

    \b
    Examples:
      devctl cp data/ mydev:~/data
      devctl cp mydev:~/runs/exp1 ./exp1
      devctl cp config.yaml ddp:~/ --all-ranks
    """
    src, dst = _remote(source), _remote(destination)
    if (src is None) == (dst is None):
        raise click.UsageError("Exactly one of SRC and DST must be NAME:PATH (a path in a DevServer), e.g. "
                               "devctl cp data/ mydev:~/data")
    with target(ctx).client() as client:
        if dst is not None:
            result = client.copy_to(dst[0], source, dst[1], rank=rank, all_ranks=all_ranks)
            ranks = ", ".join(map(str, result.ranks))
            click.echo(f"Copied {source} to {dst[0]}:{result.remote_path} (rank {ranks}): {result.files} files, "
                       f"{_size(result.bytes_sent)}.")
        else:
            assert src is not None
            if all_ranks:
                raise click.UsageError("--all-ranks copies to the pods; to fetch from several ranks, run once "
                                       "per --rank into different directories.")
            result = client.copy_from(src[0], src[1], destination, rank=rank)
            click.echo(f"Copied {src[0]}:{src[1]} (rank {rank}) to {destination}: {result.files} files.")


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if count < 1024 or unit == "MiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return f"{count} B"  # pragma: no cover


@click.command("sync")
@click.argument("local_dir", metavar="LOCAL_DIR", type=click.Path(exists=True, file_okay=False))
@click.argument("remote", metavar="NAME[:DIR]")
@click.option("--rank", "ranks", type=click.IntRange(0), multiple=True,
              help="Only this rank (repeatable; default: every rank).")
@cluster_options
@click.pass_context
def sync(ctx: click.Context, local_dir: str, remote: str, ranks: tuple[int, ...]) -> None:
    """Upload a working directory to every rank of a DevServer, sending only what changed.

    .git and what .gitignore ignores stay here; nothing in the DevServer is deleted. DIR defaults to
    ~/<name of LOCAL_DIR>.

    \b
    Examples:
      devctl sync . ddp                    # to ~/<this directory's name> on every rank
      devctl sync ./project mydev:~/code
    """
    name, _, directory = remote.partition(":")
    with target(ctx).client() as client:
        result = client.sync(name, local_dir, directory or None, ranks=list(ranks) or None)
    where = ", ".join(map(str, result.ranks))
    if result.bytes_sent == 0:
        click.echo(f"{name}:{result.remote_path} (rank {where}) is up to date.")
    else:
        click.echo(f"Synced {local_dir} to {name}:{result.remote_path} (rank {where}): {result.files} files, "
                   f"{_size(result.bytes_sent)}.")


# -- ssh, code -------------------------------------------------------------------------------------------

@click.command("ssh-config")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--install", is_flag=True, help="Add the Include line to ~/.ssh/config (once, at the top).")
@click.option("--identity", metavar="KEY", help="Private key to use (default: ~/.ssh/devservers_ed25519, made "
                                                "on first use).")
@cluster_options
@click.pass_context
def ssh_config(ctx: click.Context, names: tuple[str, ...], install: bool, identity: str | None) -> None:
    """Write ssh Host entries for DevServers, for ssh, scp, rsync, sftp and VS Code Remote-SSH.

    NAME.devserver reaches rank 0 and NAME-<rank>.devserver each rank of a distributed server, through
    devctl ssh-proxy (sshd in the pod over exec: no port is opened). The entries go to
    ~/.ssh/devservers/hosts/NAME.conf; running ranks' host keys are pinned in ~/.ssh/devservers/known_hosts.
    Without NAME: every DevServer of the namespace.

    \b
    Examples:
      devctl ssh-config mydev --install && ssh mydev.devserver
      rsync -a -e ssh ./data/ mydev.devserver:data/
      scp ddp-1.devserver:~/log.txt .
    """
    with target(ctx).client() as client:
        result = client.ssh_config(list(names) or None, identity=identity, install=install)
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    if not result.hosts:
        click.echo(f"No DevServers in namespace '{client.namespace}': nothing to write.", err=True)
        return
    for path in result.files:
        click.echo(f"Wrote {path}")
    click.echo(f"Hosts: {' '.join(result.hosts)}")
    if result.installed:
        click.echo(f"Connect with: ssh {result.hosts[0]}")
    else:
        click.echo(f"To use them, add this line at the top of ~/.ssh/config (or rerun with --install):\n"
                   f"  {result.include}")


@click.command("ssh-proxy")
@click.argument("host", metavar="HOST")
@click.option("--identity", metavar="KEY", help="Private key whose public half the DevServer must accept.")
@cluster_options
@click.pass_context
def ssh_proxy(ctx: click.Context, host: str, identity: str | None) -> None:
    """ssh's ProxyCommand for HOST (NAME.devserver or NAME-RANK.devserver): not for typing by hand.

    Runs sshd -i in the DevServer and relays it to this process's stdin and stdout. devctl ssh-config
    writes the entries that use it.

    \b
    Examples:
      ssh -o ProxyCommand='devctl ssh-proxy %h' mydev.devserver     # what the written Host entry does
      devctl ssh-proxy ddp-1.devserver --identity ~/.ssh/id_ed25519
    """
    with target(ctx).client() as client:
        ctx.exit(client.ssh_proxy(host, identity=identity))


@click.command("code")
@name_argument()
@click.argument("path", required=False, metavar="[PATH]")
@click.option("--rank", type=click.IntRange(0), default=0, show_default=True,
              help="Which pod of a distributed DevServer.")
@cluster_options
@click.pass_context
def code(ctx: click.Context, name: str, path: str | None, rank: int) -> None:
    """Open VS Code on a DevServer through Remote-SSH (writes and installs its ssh entry first).

    Runs code --remote ssh-remote+NAME.devserver PATH (PATH: the home by default) when the code command
    exists; otherwise prints the steps to do it by hand.

    \b
    Examples:
      devctl code mydev
      devctl code ddp ~/project --rank 1
    """
    import shutil
    import subprocess

    with target(ctx).client() as client:
        result = client.ssh_config([name], install=True)
        host = f"{name}-{rank}.devserver" if rank else f"{name}.devserver"
        folder = path or str(client.exec(name, "printf %s \"$HOME\"", rank=rank, check=True).stdout)
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    executable = shutil.which("code")
    argv = ["code", "--remote", f"ssh-remote+{host}", folder]
    if executable is None:
        click.echo(f"The `code` command is not on PATH. The ssh entry is ready ({result.files[0]}, included from "
                   f"~/.ssh/config); to connect by hand:\n"
                   f"  1. In VS Code, install the Remote - SSH extension (ms-vscode-remote.remote-ssh).\n"
                   f"  2. Run 'Remote-SSH: Connect to Host...' and pick {host}.\n"
                   f"  3. Open the folder {folder}.\n"
                   f"Or put `code` on PATH (VS Code: 'Shell Command: Install code command in PATH') and rerun.")
        return
    click.echo(f"Opening {folder} on {host} in VS Code.")
    ctx.exit(subprocess.call([executable, *argv[1:]]))


# -- jupyter ---------------------------------------------------------------------------------------------

@click.command("jupyter")
@name_argument()
@click.option("--rank", type=click.IntRange(0), default=0, show_default=True,
              help="Which pod of a distributed DevServer.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, metavar="P",
              help="Local port to forward from (default: any free one).")
@click.option("--no-browser", is_flag=True, help="Print the URL only; do not open a browser.")
@click.option("--stop", is_flag=True, help="Stop the JupyterLab running in the DevServer, and exit.")
@cluster_options
@click.pass_context
def jupyter(ctx: click.Context, name: str, rank: int, port: int, no_browser: bool, stop: bool) -> None:
    """Open JupyterLab running in a DevServer (started there, or the one already running).

    JupyterLab runs in the server with the home as root and a generated token; a local port is
    forwarded to it and the URL printed (and opened in a browser). Ctrl-C ends the forward and leaves
    JupyterLab running, with its kernels; --stop stops it.

    \b
    Examples:
      devctl jupyter mydev
      devctl jupyter mydev --no-browser --port 8888
      devctl jupyter mydev --stop
    """
    with target(ctx).client() as client:
        if stop:
            stopped = client.jupyter_stop(name, rank=rank)
            click.echo(f"JupyterLab in {name} (rank {rank}) stopped." if stopped
                       else f"No JupyterLab was running in {name} (rank {rank}).")
            return
        server = client.jupyter(name, rank=rank)

        def on_error(message: str) -> None:
            click.echo(f"error: {message}", err=True)

        forward = client.port_forward(name, server.port, local_port=port, rank=rank, on_error=on_error)
        url = server.url(forward.address)
        state = "already running" if server.reused else "started"
        click.echo(f"JupyterLab in {name} (rank {rank}, root {server.root}): {state}.")
        click.echo(f"Open: {url}")
        click.echo(f"Ctrl-C ends the forward; JupyterLab keeps running (stop it with: devctl jupyter {name} --stop).",
                   err=True)
        sys.stdout.flush()
        if not no_browser:
            import webbrowser

            with contextlib.suppress(Exception):
                webbrowser.open(url)
        _wait_for_interrupt([forward])


CONNECT_COMMANDS = [port_forward, cp, sync, ssh_config, ssh_proxy, code, jupyter]

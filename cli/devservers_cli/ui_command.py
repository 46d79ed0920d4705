"""``devctl ui``: the web dashboard on this machine, acting with the user's own kubeconfig.

The one place a front end starts another (DESIGN.md): the dashboard (``devservers_ui``) is imported only
when the command runs, so ``devctl --help`` does not pay for aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .options import cluster_options, target

if TYPE_CHECKING:
    from devservers_sdk.client import DevServerClient


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--no-browser", is_flag=True, help="Print the URL without opening a browser.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Show the DevServers of every namespace you may list.")
@cluster_options
@click.pass_context
def ui(ctx: click.Context, port: int, no_browser: bool, all_namespaces: bool) -> None:
    """Open the web dashboard: a live list, a create form and a page per DevServer.

    It listens on 127.0.0.1 only and calls the cluster with your kubeconfig, as kubectl does; nothing is
    deployed. The URL it prints carries a one-run token: open it (it becomes a cookie), keep it private.
    Ctrl-C stops it.

    \b
    Examples:
      devctl ui
      devctl ui -A --port 8765 --no-browser
    """
    from devservers_ui import Dashboard, serve

    where = target(ctx)

    def make_client(namespace: str | None) -> DevServerClient:
        from devservers_sdk.client import DevServerClient

        return DevServerClient(namespace=namespace or where.namespace, context=where.context,
                               kubeconfig=where.kubeconfig)

    dashboard = Dashboard(make_client, all_namespaces=all_namespaces)

    def announce(url: str) -> None:
        click.echo(f"Dashboard at {url}", err=False)
        click.echo("Keep this URL private: it lets a browser act as you. Ctrl-C stops the dashboard.", err=True)

    serve(dashboard, port=port, open_browser=not no_browser, announce=announce)

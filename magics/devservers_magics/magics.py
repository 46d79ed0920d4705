"""``%devserver`` and ``%%devserver``: parse, make one SDK call, return the SDK's object.

One line-and-cell magic dispatches on its first word (``%devserver list``, ``%%devserver run mydev``). Each
verb is a method declared with ``@magic_arguments``, and the help of ``%devserver?`` is assembled from those
parsers, so the documentation cannot drift from what is parsed.

Rules every verb follows:

* Results are *returned* (the SDK's ``DevServer``, ``DevServerDescription``, or a list subclass of SDK objects
  with rich reprs, see ``tables.py``), never displayed here: IPython shows a cell's last value, and
  ``servers = %devserver list`` must not draw a table.
* A ``DevServerError`` becomes ``IPython.core.error.UsageError`` with the SDK's sentence: IPython prints it
  as one line, without a traceback.
* Nothing is imported from the SDK until a verb runs: ``%load_ext devservers_magics`` stays fast and
  offline. (``kubernetes`` itself is imported by the SDK on its first request.)
"""

from __future__ import annotations

import contextlib
import html
import keyword
import os
import re
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split
from traitlets import Float, Unicode

from .tables import DevServerTable, FlavorTable

if TYPE_CHECKING:
    from argparse import Namespace

    from devservers_sdk.client import DevServerClient
    from devservers_sdk.models import DevServer

__all__ = ["DevServerMagics"]

_namespace_option = argument(
    "-n",
    "--namespace",
    default=None,
    help="namespace for this call only (default: DevServerMagics.namespace, DEVSERVERS_NAMESPACE, "
    "then the kubeconfig context's)",
)
_wait_timeout_option = argument(
    "--timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="how long --wait waits (default: DevServerMagics.wait_timeout)",
)


# The SDK's messages name the devctl command to run next; the same verb exists here with the same name.
_DEVCTL_HINT = re.compile(
    r"\bdevctl (?=(?:flavors|list|create|describe|delete|extend|update|stop|start|wait|logs)\b)"
)


def notebook_message(message: str) -> str:
    """The SDK's sentence, with ``devctl VERB`` hints written as ``%devserver VERB``."""
    return _DEVCTL_HINT.sub("%devserver ", message)


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """Turn the SDK's errors into ``UsageError`` (exactly that class: one line, no traceback)."""
    from devservers_sdk.errors import DevServerError

    try:
        yield
    except DevServerError as exc:
        raise UsageError(notebook_message(exc.render("magic"))) from exc


@magics_class
class DevServerMagics(Magics):
    """The ``%devserver`` magics. Configure with ``%config DevServerMagics.namespace = "ml"``."""

    namespace = Unicode(
        None,
        allow_none=True,
        help="Namespace of the DevServers (default: DEVSERVERS_NAMESPACE, then the kubeconfig "
        "context's, then 'default').",
    ).tag(config=True)
    context = Unicode(
        None, allow_none=True, help="kubeconfig context (default: DEVSERVERS_CONTEXT, then current-context)."
    ).tag(config=True)
    kubeconfig = Unicode(
        None, allow_none=True, help="kubeconfig path (default: KUBECONFIG, then ~/.kube/config)."
    ).tag(config=True)
    python = Unicode("python3", help="Interpreter that runs %%devserver run cells on the DevServer.").tag(
        config=True
    )
    wait_timeout = Float(300.0, help="Seconds a --wait waits before giving up.").tag(config=True)

    _LINE_VERBS: ClassVar[dict[str, str]] = {
        "flavors": "_flavors",
        "list": "_list",
        "create": "_create",
        "describe": "_describe",
        "delete": "_delete",
        "extend": "_extend",
        "update": "_update",
        "stop": "_stop",
        "start": "_start",
        "wait": "_wait",
        "logs": "_logs",
        "ui": "_ui",
        "jupyter": "_jupyter",
    }
    _CELL_VERBS: ClassVar[dict[str, str]] = {"run": "_run", "shell": "_shell", "launch": "_launch"}

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._clients: dict[tuple[str | None, ...], DevServerClient] = {}
        self._forwards: dict[tuple[str, str, int], Any] = {}

    # -- the client ---------------------------------------------------------------------------------

    def client(self, namespace: str | None = None) -> DevServerClient:
        """The SDK client for the configured (or given) namespace, made on first use and then reused."""
        key = (
            namespace or self.namespace,
            self.context,
            self.kubeconfig,
            *(os.environ.get(name) for name in ("KUBECONFIG", "DEVSERVERS_NAMESPACE", "DEVSERVERS_CONTEXT")),
        )
        if key not in self._clients:
            from devservers_sdk.client import DevServerClient

            with usage_errors():
                self._clients[key] = DevServerClient(
                    namespace=key[0], context=self.context, kubeconfig=self.kubeconfig
                )
        return self._clients[key]

    # -- the magic ----------------------------------------------------------------------------------

    @line_cell_magic
    def devserver(self, line: str, cell: str | None = None) -> Any:
        # The docstring is assembled from the verbs' parsers below (see _help_text).
        verb, _, rest = line.strip().partition(" ")
        verbs = self._CELL_VERBS if cell is not None else self._LINE_VERBS
        if not verb:
            print(_summary())
            return None
        if verb not in verbs:
            raise UsageError(_unknown_verb(verb, cell is not None))
        handler: Callable[..., Any] = getattr(self, verbs[verb])
        # Words after a lone "--" belong to the remote script (argparse cannot place them after options).
        words = arg_split(rest)
        own, after = (words[: words.index("--")], words[words.index("--") + 1 :]) if "--" in words else (words, [])
        if {"-h", "--help"} & set(own):
            print(handler.parser.format_help())  # type: ignore[attr-defined]
            return None
        args = handler.parser.parse_args(own)  # type: ignore[attr-defined]
        if after:
            if not hasattr(args, "script_args"):
                raise UsageError(f"%devserver {verb} takes no arguments after --: {' '.join(after)}")
            args.script_args = [*args.script_args, *after]
        with usage_errors():
            return handler(args, cell) if cell is not None else handler(args)

    # -- line verbs ---------------------------------------------------------------------------------

    @magic_arguments("devserver flavors")
    @_namespace_option
    def _flavors(self, args: Namespace) -> FlavorTable:
        """The sizes on the menu: CPU, memory and GPUs per pod, lifetime limits.

        Example: %devserver flavors
        """
        return FlavorTable(self.client(args.namespace).flavors())

    @magic_arguments("devserver list")
    @argument("-A", "--all-namespaces", action="store_true", help="list every namespace")
    @argument("--owner", default=None, help="only DevServers of this owner")
    @argument("--mine", action="store_true", help="only your own DevServers")
    @_namespace_option
    def _list(self, args: Namespace) -> DevServerTable:
        """DevServers with phase, ready ranks, time left and age; returns a list of DevServer.

        Example: servers = %devserver list --mine
        """
        client = self.client(args.namespace)
        owner = client.owner if args.mine else args.owner
        return DevServerTable(client.list(owner=owner, all_namespaces=args.all_namespaces))

    @magic_arguments("devserver create")
    @argument("name", metavar="NAME", help="the DevServer name (lowercase letters, digits and '-')")
    @argument("-f", "--flavor", required=True, help="its size, from %%devserver flavors")
    @argument("--image", default=None, help="container image (default: the flavor's)")
    @argument(
        "--time",
        dest="time_to_live",
        default=None,
        metavar="DURATION",
        help="time to live from creation: 30m, 4h, 1h30m, 2d",
    )
    @argument(
        "--idle-timeout",
        default=None,
        metavar="DURATION",
        help="stop after this long without activity: 30m, 2h (or seconds)",
    )
    @argument("--no-auto-shutdown", action="store_true", help="never stop it for being idle")
    @argument("--expires", default=None, metavar="TIME", help="delete it at this time: 2026-12-01T18:00:00Z")
    @argument(
        "--home-size",
        default=None,
        metavar="QUANTITY",
        help="persistent home volume per pod: 50Gi (default: the flavor's, else the cluster's)",
    )
    @argument("--no-home", action="store_true", help="no persistent home: its files are lost at every stop")
    @argument("--shared-volume", default=None, metavar="CLAIM", help="existing PVC to mount at /shared")
    @argument(
        "--distributed", action="store_true", help="a torchrun group (the next four options need it)"
    )
    @argument("--world-size", type=int, default=None, help="pods in the group (default 2)")
    @argument("--nprocs-per-node", type=int, default=None, help="processes per pod (default 1)")
    @argument("--backend", choices=["nccl", "gloo"], default=None, help="torch.distributed backend")
    @argument(
        "--nccl", action="append", default=[], metavar="KEY=VALUE", help="an NCCL_* setting (repeatable)"
    )
    @argument("--wait", action="store_true", help="wait until it runs, printing progress")
    @_wait_timeout_option
    @_namespace_option
    def _create(self, args: Namespace) -> DevServer:
        """Create a DevServer; returns it (as running, with --wait).

        Example: server = %devserver create mydev --flavor cpu-small --time 4h --wait
        """
        nccl = dict(_key_value(item) for item in args.nccl)
        idle = (
            int(args.idle_timeout) if args.idle_timeout and args.idle_timeout.isdigit() else args.idle_timeout
        )
        client = self.client(args.namespace)
        server = client.create(
            args.name,
            flavor=args.flavor,
            image=args.image,
            mode="distributed" if args.distributed else "standalone",
            world_size=args.world_size,
            nprocs_per_node=args.nprocs_per_node,
            backend=args.backend,
            nccl_settings=nccl or None,
            home_size="0" if args.no_home else args.home_size,
            shared_volume=args.shared_volume,
            time_to_live=args.time_to_live,
            idle_timeout=idle,
            auto_shutdown=not args.no_auto_shutdown,
            expiration_time=args.expires,
            wait=args.wait,
            timeout=self._timeout(args),
            on_progress=_progress_printer() if args.wait else None,
        )
        print(f"DevServer '{args.name}' {client.lifetime(server).describe(datetime.now(UTC))}.", flush=True)
        return server

    @magic_arguments("devserver describe")
    @argument("name", metavar="NAME", help="the DevServer name")
    @argument("--events", type=int, default=20, help="how many recent events to show")
    @_namespace_option
    def _describe(self, args: Namespace) -> Any:
        """Spec, status, conditions, pods and recent events; returns a DevServerDescription.

        Example: %devserver describe mydev
        """
        return self.client(args.namespace).describe(args.name, events=args.events)

    @magic_arguments("devserver delete")
    @argument("names", nargs="+", metavar="NAME", help="the DevServer name(s)")
    @argument("--wait", action="store_true", help="wait until they and their pods are gone")
    @_wait_timeout_option
    @_namespace_option
    def _delete(self, args: Namespace) -> None:
        """Delete DevServers with their pods and volumes (no confirmation: the cell is the confirmation).

        Example: %devserver delete mydev --wait
        """
        client = self.client(args.namespace)
        for name in args.names:
            client.delete(name, wait=args.wait, timeout=self._timeout(args))
            print(f"DevServer '{name}' {'deleted' if args.wait else 'is being deleted'}.")

    @magic_arguments("devserver extend")
    @argument("name", metavar="NAME", help="the DevServer name")
    @argument(
        "-t",
        "--time",
        "--by",
        dest="by",
        default="1h",
        metavar="DURATION",
        help="how much longer it may live, from its current expiry or now (default 1h)",
    )
    @_namespace_option
    def _extend(self, args: Namespace) -> None:
        """Push a DevServer's expiry back and say when it now expires (as its ExpiringSoon condition and
        the widget's row write it).

        Example: %devserver extend mydev --time 2h
        """
        client = self.client(args.namespace)
        server = client.extend(args.name, by=args.by)
        # One sentence, in the SDK's words (what describe then shows): no whole describe table, whose
        # conditions the operator has not refreshed yet.
        print(f"DevServer '{args.name}' now {client.lifetime(server).describe(datetime.now(UTC))}.", flush=True)

    @magic_arguments("devserver update")
    @argument("name", metavar="NAME", help="the DevServer name")
    @argument("-f", "--flavor", default=None, help="the new flavor")
    @argument("--image", default=None, help="the new image")
    @_namespace_option
    def _update(self, args: Namespace) -> DevServer:
        """Change the flavor or image (the pods are replaced); returns the DevServer.

        Example: %devserver update mydev --flavor cpu-large
        """
        return self.client(args.namespace).update(args.name, flavor=args.flavor, image=args.image)

    @magic_arguments("devserver stop")
    @argument("name", metavar="NAME", help="the DevServer name")
    @argument("--wait", action="store_true", help="wait until it is Stopped")
    @_wait_timeout_option
    @_namespace_option
    def _stop(self, args: Namespace) -> DevServer:
        """Stop a DevServer: its pods go, its home volumes and the DevServer stay.

        Example: %devserver stop mydev
        """
        return self.client(args.namespace).stop(args.name, wait=args.wait, timeout=self._timeout(args))

    @magic_arguments("devserver start")
    @argument("name", metavar="NAME", help="the DevServer name")
    @argument("--wait", action="store_true", help="wait until it runs")
    @_wait_timeout_option
    @_namespace_option
    def _start(self, args: Namespace) -> DevServer:
        """Start a stopped DevServer again.

        Example: %devserver start mydev --wait
        """
        return self.client(args.namespace).start(args.name, wait=args.wait, timeout=self._timeout(args))

    @magic_arguments("devserver wait")
    @argument("name", metavar="NAME", help="the DevServer name")
    @argument("--for", dest="phase", default="Running", help="the phase to wait for (default Running)")
    @_wait_timeout_option
    @_namespace_option
    def _wait(self, args: Namespace) -> DevServer:
        """Wait until a DevServer reaches a phase, printing progress; returns it.

        Example: %devserver wait mydev --for Stopped
        """
        return self.client(args.namespace).wait(
            args.name, for_phase=args.phase, timeout=self._timeout(args), on_progress=_progress_printer()
        )

    @magic_arguments("devserver logs")
    @argument("name", metavar="NAME", help="the DevServer name")
    @argument("--rank", type=int, default=0, help="which pod of a distributed DevServer")
    @argument("--tail", type=int, default=None, metavar="LINES", help="only the last LINES lines")
    @argument("-f", "--follow", action="store_true", help="keep printing new lines until interrupted")
    @argument("-p", "--previous", action="store_true", help="the log of the container's previous run")
    @_namespace_option
    def _logs(self, args: Namespace) -> None:
        """Print the log of a DevServer's pod.

        Example: %devserver logs mydev --tail 20
        """
        client = self.client(args.namespace)
        lines = client.logs(args.name, rank=args.rank, follow=args.follow, tail=args.tail, previous=args.previous)
        printed = False
        try:
            for text in lines:
                print(text, flush=True)
                printed = True
        except KeyboardInterrupt:
            if not args.follow:
                raise
        finally:
            lines.close()
        if not printed:
            print(client.no_logs_message(args.name, rank=args.rank), flush=True)

    @magic_arguments("devserver ui")
    @argument(
        "-A",
        "--all",
        dest="everyone",
        action="store_true",
        help="list everyone's DevServers in the namespace (with an Owner column), not only yours",
    )
    @_namespace_option
    def _ui(self, args: Namespace) -> Any:
        """A form to create DevServers and a live list to extend, stop, start and delete them.

        Example: %devserver ui
        """
        from .widgets import DevServerUI

        return DevServerUI(self.client(args.namespace), mine=not args.everyone)

    # -- cell verbs ---------------------------------------------------------------------------------

    @magic_arguments("devserver jupyter")
    @argument("name", metavar="NAME", help="the DevServer name")
    @argument("--rank", type=int, default=0, help="which pod of a distributed DevServer")
    @argument("--stop", action="store_true", help="stop the JupyterLab running in the DevServer")
    @_namespace_option
    def _jupyter(self, args: Namespace) -> Any:
        """JupyterLab in the DevServer (started, or the running one), forwarded here: shows the link.

        The forward lives as long as this kernel (or until --stop); JupyterLab keeps running in the server.

        Example: %devserver jupyter mydev
        """
        client = self.client(args.namespace)
        key = (client.namespace, args.name, args.rank)
        if args.stop:
            forward = self._forwards.pop(key, None)
            if forward is not None:
                forward.close()
            stopped = client.jupyter_stop(args.name, rank=args.rank)
            print(f"JupyterLab in {args.name} (rank {args.rank}) " + ("stopped." if stopped else "was not running."))
            return None
        server = client.jupyter(args.name, rank=args.rank)
        forward = self._forwards.get(key)
        if forward is None or forward.remote_port != server.port or forward.closed:
            if forward is not None:
                forward.close()
            forward = self._forwards[key] = client.port_forward(args.name, server.port, rank=args.rank)
        return JupyterLink(server.url(forward.address), args.name, args.rank)

    @magic_arguments("devserver run")
    @argument("name", metavar="NAME", help="the DevServer name")
    @argument("--rank", type=int, default=0, help="which pod of a distributed DevServer")
    @argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop the remote process after this long (default: no limit)",
    )
    @_namespace_option
    def _run(self, args: Namespace, cell: str) -> None:
        """(cell) Run the cell's Python on the DevServer, streaming its output.

        Output appears as it is printed; a failure shows the remote traceback and raises UsageError;
        interrupting the kernel stops the remote process. The cell sees no notebook variables.

        Example: %%devserver run mydev   (the first line of the cell)
        """
        self._remote(args, cell, "python")

    @magic_arguments("devserver shell")
    @argument("name", metavar="NAME", help="the DevServer name")
    @argument("--rank", type=int, default=0, help="which pod of a distributed DevServer")
    @argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop the remote script after this long (default: no limit)",
    )
    @_namespace_option
    def _shell(self, args: Namespace, cell: str) -> None:
        """(cell) Run the cell as a bash (or sh) script on the DevServer, streaming its output.

        Example: %%devserver shell mydev   (the first line of the cell)
        """
        self._remote(args, cell, "shell")

    @magic_arguments("devserver launch")
    @argument("name", metavar="NAME", help="a distributed DevServer, Running")
    @argument(
        "--nprocs-per-node",
        default=None,
        metavar="N",
        help="processes per pod (default: the DevServer's nprocsPerNode; also auto, cpu, gpu)",
    )
    @argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="a variable for every process (repeatable)"
    )
    @argument("--workdir", default=None, metavar="LOCAL_DIR",
              help="a local directory (your code) uploaded to every pod first; the cell runs there")
    @argument("--cwd", default=None, metavar="DIR", help="directory of the pods to run in (default: the home)")
    @argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop every rank after this long (default: no limit)",
    )
    @argument("--as", dest="as_name", default=None, metavar="VAR",
              help="also store the LaunchHandle in the notebook variable VAR, as soon as the launch starts")
    @argument("script_args", nargs="*", metavar="-- ARGS", help="arguments for the cell's script, after --")
    @_namespace_option
    def _launch(self, args: Namespace, cell: str) -> Any:
        """(cell) Run the cell as a script under torchrun on every rank of a distributed DevServer.

        The cell is written to every pod, then torchrun runs it there (the group's shape comes from the
        DevServer); every rank's output streams in, each line prefixed [rank N]. If a rank fails, the others
        are stopped and UsageError names the rank; interrupting the kernel stops every rank. Returns the
        SDK's LaunchHandle (returncodes, logs(rank=...)); --as VAR stores it in VAR too, which the next cells
        can rely on (IPython's ``_`` is not always the cell's value), also when a rank fails or the cell is
        interrupted.

        Example: %%devserver launch ddp -- --epochs 3   (the first line of the cell)
        Example: %%devserver launch ddp --as run -- --epochs 3   (then run.returncodes, run.logs(rank=0))
        """
        from devservers_sdk.errors import LaunchFailedError

        from .launch_cell import failure_message, print_lines

        if args.as_name is not None and (not args.as_name.isidentifier() or keyword.iskeyword(args.as_name)):
            raise UsageError(f"--as takes a Python variable name, e.g. --as run (got {args.as_name!r})")
        nprocs = args.nprocs_per_node
        env = dict(_key_value(item, option="--env") for item in args.env)
        # The SDK writes the cell to every rank, and only once it knows launch can run there.
        handle = self.client(args.namespace).launch(
            args.name,
            args.script_args,
            source=cell,
            nprocs_per_node=int(nprocs) if nprocs and nprocs.isdigit() else nprocs,
            env=env or None,
            workdir=args.workdir,
            cwd=args.cwd,
            timeout=args.timeout,
        )
        if args.as_name is not None and self.shell is not None:  # a shell always, once the magics are loaded
            self.shell.push({args.as_name: handle})
        try:
            with handle:
                print_lines(handle, sys.stdout, sys.stderr)
                handle.wait()
        except LaunchFailedError as exc:
            raise UsageError(notebook_message(failure_message(exc))) from exc
        except KeyboardInterrupt:
            print(f"Interrupted: every rank of the launch on {args.name} was stopped.", file=sys.stderr, flush=True)
            raise
        return handle

    def _remote(self, args: Namespace, cell: str, kind: Any) -> None:
        from devservers_sdk.errors import ExecError

        from .remote_cell import exec_failure_message, run_cell

        where = f"{args.name} (rank {args.rank})"
        try:
            result = run_cell(
                self.client(args.namespace),
                args.name,
                cell,
                kind=kind,
                rank=args.rank,
                timeout=args.timeout,
                python=self.python,
            )
        except ExecError as exc:
            raise UsageError(
                exec_failure_message(
                    exc, name=args.name, rank=args.rank, timeout=args.timeout, python=self.python
                )
            ) from exc
        except KeyboardInterrupt:
            print(
                f"Interrupted: the cell's remote process on {where} was stopped.", file=sys.stderr, flush=True
            )
            raise
        if result.interpreter_missing(self.python):
            raise UsageError(
                f"Could not start {self.python!r} on DevServer '{args.name}' (rank {args.rank}). "
                f"Choose the remote interpreter with: %config DevServerMagics.python = 'python3'"
            )
        if result.returncode != 0:
            what = "remote code" if kind == "python" else "remote shell script"
            raise UsageError(f"{what} exited with status {result.returncode} on {where}")

    # -- helpers ------------------------------------------------------------------------------------

    def _timeout(self, args: Namespace) -> float:
        return float(args.timeout) if args.timeout is not None else float(self.wait_timeout)


class JupyterLink:
    """What ``%devserver jupyter`` shows: a link in a notebook, the URL in a terminal."""

    def __init__(self, url: str, name: str, rank: int) -> None:
        self.url, self.name, self.rank = url, name, rank

    def __repr__(self) -> str:
        return f"JupyterLab in {self.name} (rank {self.rank}): {self.url}"

    def _repr_html_(self) -> str:
        url = html.escape(self.url, quote=True)
        return (f'JupyterLab in {html.escape(self.name)} (rank {self.rank}): '
                f'<a href="{url}" target="_blank" rel="noopener">{url}</a>')


def _key_value(item: str, *, option: str = "--nccl") -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UsageError(f"{option} takes KEY=VALUE, e.g. {option} NCCL_DEBUG=INFO (got {item!r})")
    return key, value


def _progress_printer() -> Callable[[DevServer], None]:
    """Print one line per change of phase, ready ranks or message while waiting."""
    from .forms import progress_text

    last: list[str] = []

    def show(server: DevServer) -> None:
        line = progress_text(server)
        if not last or last[-1] != line:
            last.append(line)
            print(line, flush=True)

    return show


def _verb_handlers() -> list[tuple[str, Any]]:
    methods = {**DevServerMagics._LINE_VERBS, **DevServerMagics._CELL_VERBS}
    return [(verb, getattr(DevServerMagics, method)) for verb, method in methods.items()]


def _summary() -> str:
    lines = ["Usage: %devserver VERB [options]   or, on a cell's first line, %%devserver run|shell|launch NAME", ""]
    for verb, handler in _verb_handlers():
        description = handler.parser.description or ""
        example = next(
            (
                line.strip().removeprefix("Example:").strip()
                for line in description.splitlines()
                if line.strip().startswith("Example")
            ),
            "",
        )
        first = description.strip().splitlines()[0] if description.strip() else ""
        lines.append(f"  {verb:<9} {first}")
        if example:
            lines.append(f"  {'':<9}   e.g. {example}")
    lines += ["", "Details: %devserver VERB --help, or %devserver?"]
    return "\n".join(lines)


def _unknown_verb(verb: str, cell: bool) -> str:
    if cell:
        if verb in DevServerMagics._LINE_VERBS:
            return f"%%devserver {verb} is not a cell magic: use %devserver {verb} on a line of its own."
        return f"Unknown cell verb {verb!r}: use %%devserver run NAME, shell NAME or launch NAME."
    if verb in DevServerMagics._CELL_VERBS:
        return (
            f"{verb} runs a cell: write %%devserver {verb} NAME as the first line of the cell, then the "
            f"code to run."
        )
    verbs = ", ".join([*DevServerMagics._LINE_VERBS, *DevServerMagics._CELL_VERBS])
    return f"Unknown verb {verb!r}. Verbs: {verbs}."


def _help_text() -> str:
    intro = """Manage DevServers from a notebook, and run cells on them.

  %devserver VERB [options]        flavors, list, create, describe, delete, extend, update, stop, start,
                                   wait, logs, ui
  %%devserver run NAME [options]   (cell) the cell's Python runs on the DevServer, output streams back
  %%devserver shell NAME           (cell) the cell runs there as a bash script
  %%devserver launch NAME          (cell) the cell runs under torchrun on every rank of a distributed
                                   DevServer; each rank's output streams back as [rank N] ...

Line verbs return the SDK's objects (a DevServer, a list of DevServer...), shown as tables:
servers = %devserver list keeps them. SDK errors are raised as UsageError.
Configuration: %config DevServerMagics.namespace = "ml" (also .context, .kubeconfig, .python,
.wait_timeout); every verb takes -n/--namespace for one call.

Examples:
  %load_ext devservers_magics
  %devserver flavors
  server = %devserver create mydev --flavor cpu-small --time 4h --wait
  %devserver extend mydev --time 2h
  %devserver ui

  %%devserver run mydev
  import torch, socket
  print(socket.gethostname(), torch.__version__)

  %%devserver launch ddp
  import torch, torch.distributed as dist
  dist.init_process_group("gloo")
  joined = torch.ones(1); dist.all_reduce(joined)
  print(f"process {dist.get_rank()}: {joined.item():.0f} processes joined")
"""
    sections = [intro]
    for verb, handler in _verb_handlers():
        sections.append(f"--- {verb} " + "-" * (60 - len(verb)) + "\n" + handler.parser.format_help().strip())
    return "\n\n".join(sections)


DevServerMagics.devserver.__doc__ = _help_text()

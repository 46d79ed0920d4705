"""Options every command shares, the cluster they point at, and shell completion of names.

kubectl takes ``-n``, ``--context``, ``--kubeconfig`` anywhere on the line; so does devctl: the same
decorator sits on the group (``devctl -n ml list``) and on each command (``devctl list -n ml``), and
both write into one ``Target`` on the Click context, the command's value winning. Nothing here imports
the SDK at module level: ``devctl --help`` pays for Click only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.shell_completion import CompletionItem

from .render import FORMATS

if TYPE_CHECKING:
    from devservers_sdk.client import DevServerClient

F = TypeVar("F", bound=Callable[..., Any])

COMPLETION_TIMEOUT = 3.0


@dataclass
class Target:
    """Which cluster and namespace a command works on, and how it reports failures."""

    namespace: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    debug: bool = False

    def client(self, *, request_timeout: float = 30.0) -> DevServerClient:
        """A ``DevServerClient`` for this target (the SDK is imported here, on first use)."""
        from devservers_sdk.client import DevServerClient

        return DevServerClient(namespace=self.namespace, context=self.context, kubeconfig=self.kubeconfig,
                               request_timeout=request_timeout)

    def flags(self) -> str:
        """The flags to repeat in a suggested next command, e.g. `` -n ml`` (empty by default)."""
        parts = []
        if self.namespace:
            parts.append(f" -n {self.namespace}")
        if self.context:
            parts.append(f" --context {self.context}")
        return "".join(parts)


def target(ctx: click.Context) -> Target:
    return ctx.ensure_object(Target)


def _store(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            setattr(target(ctx), field, value)

    return callback


kubeconfig_option = click.option("--kubeconfig", metavar="PATH", expose_value=False, callback=_store("kubeconfig"),
                                 help="Kubeconfig file (default: KUBECONFIG, then ~/.kube/config).")


def cluster_options(f: F) -> F:
    """``-n/--namespace``, ``--context``, ``--kubeconfig`` and ``--debug``, on the group and every command."""
    decorators = [
        click.option("-n", "--namespace", metavar="NS", expose_value=False, callback=_store("namespace"),
                     help="Namespace to work in (default: DEVSERVERS_NAMESPACE, then the context's, then "
                          "default)."),
        click.option("--context", metavar="NAME", expose_value=False, callback=_store("context"),
                     help="Kubeconfig context to use (default: DEVSERVERS_CONTEXT, then current-context)."),
        kubeconfig_option,
        click.option("--debug", is_flag=True, default=None, expose_value=False, callback=_store("debug"),
                     help="Show the full traceback when a command fails."),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def output_option(formats: tuple[str, ...] = FORMATS, default: str | None = "table") -> Callable[[F], F]:
    """``-o/--output``: one of ``formats`` (``render()`` knows them all)."""
    shown = "|".join(formats)
    return click.option("-o", "--output", type=click.Choice(formats), default=default, metavar=shown,
                        help=f"Output format: {', '.join(formats)}." + (f" Default: {default}." if default else ""))


def key_values(example: str) -> Callable[[click.Context, click.Parameter, tuple[str, ...]], dict[str, str]]:
    """A callback turning repeated ``KEY=VALUE`` options into a dict (``example`` is shown on a mistake)."""

    def callback(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for value in values:
            key, sep, setting = value.partition("=")
            if not sep or not key:
                raise click.BadParameter(f"expected KEY=VALUE such as {example}, got {value!r}")
            pairs[key] = setting
        return pairs

    return callback


class Duration(click.ParamType):
    """A duration as people write it (``30s``, ``10m``, ``1h30m``, ``2d``), checked while parsing.

    ``seconds=True`` converts to seconds and also takes a bare number of seconds (for ``--timeout``);
    otherwise the text is kept as written, for a spec (the SDK stores ``4h``, not 14400).
    """

    name = "duration"

    def __init__(self, *, seconds: bool) -> None:
        self.seconds = seconds

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip()
        if self.seconds:
            try:
                return float(text)
            except ValueError:
                pass
        from devservers_sdk.durations import parse_duration

        try:
            seconds = parse_duration(text).total_seconds()
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return seconds if self.seconds else text


SECONDS = Duration(seconds=True)
DURATION = Duration(seconds=False)


def timeout_option(default: str = "10m", what: str = "waiting") -> Callable[[F], F]:
    return click.option("--timeout", type=SECONDS, default=default, show_default=True,
                        help=f"Give up {what} after this long (e.g. 90s, 10m, 1h).")


# -- completion ------------------------------------------------------------------------------------------

def _completions(ctx: click.Context, names: Callable[[DevServerClient], list[str]], incomplete: str
                 ) -> list[CompletionItem]:
    """Names from the cluster for shell completion; nothing at all if anything goes wrong."""
    try:
        with target(ctx).client(request_timeout=COMPLETION_TIMEOUT) as client:
            return [CompletionItem(name) for name in names(client) if name.startswith(incomplete)]
    except Exception:  # completion must never print a traceback into the user's prompt
        return []


def complete_devserver(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return _completions(ctx, lambda client: [server.name for server in client.list()], incomplete)


def complete_flavor(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return _completions(ctx, lambda client: [flavor.name for flavor in client.flavors()], incomplete)


def name_argument(*, nargs: int = 1) -> Callable[[F], F]:
    """The NAME argument of a DevServer command, completed from the cluster."""
    return click.argument("names" if nargs != 1 else "name", metavar="NAME" + ("..." if nargs != 1 else ""),
                          nargs=nargs, required=True, shell_complete=complete_devserver)


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False

"""Where the client's kubeconfig, context, namespace and owner come from.

Precedence, as in pydantic-settings and kubectl: explicit argument > environment > kubeconfig > default.

============  ===================================  =============================  ===========================
setting       explicit                             environment                    then
============  ===================================  =============================  ===========================
kubeconfig    ``kubeconfig=``                      ``KUBECONFIG`` (``:``-list)    ``~/.kube/config``
context       ``context=``                         ``DEVSERVERS_CONTEXT``         ``current-context``
namespace     ``namespace=``                       ``DEVSERVERS_NAMESPACE``       context namespace, ``default``
owner         ``owner=``                           ``DEVSERVERS_OWNER``           SelfSubjectReview username
                                                                                  as is; the kubeconfig user
                                                                                  name only where that API
                                                                                  is not served
============  ===================================  =============================  ===========================

The kubeconfig is read here with plain YAML (merging a ``KUBECONFIG`` list the way kubectl does: the
first file that sets a key wins) so that resolving a namespace costs no import of the ``kubernetes``
package; ``kube.py`` hands the same path and context to the official loader to build the API client.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, KubeconfigUnreadableError
from .next_steps import NextStep

NAMESPACE_ENV = "DEVSERVERS_NAMESPACE"
OWNER_ENV = "DEVSERVERS_OWNER"
CONTEXT_ENV = "DEVSERVERS_CONTEXT"
KUBECONFIG_ENV = "KUBECONFIG"
DEFAULT_KUBECONFIG = "~/.kube/config"
DEFAULT_NAMESPACE = "default"

_LOCAL_UP = NextStep("local up")


@dataclass(frozen=True)
class KubeconfigInfo:
    """What the SDK needs to know of a kubeconfig before it talks to the cluster.

    Attributes:
        paths: the files read, in precedence order (``path`` is the first).
        context: the context in use.
        cluster: the cluster that context points at.
        server: that cluster's API server URL.
        user: the kubeconfig user name of the context (an owner of last resort).
        namespace: the context's namespace, or ``None`` when it sets none.
    """

    paths: tuple[str, ...]
    context: str
    cluster: str
    server: str
    user: str
    namespace: str | None

    @property
    def path(self) -> str:
        return self.paths[0]


def kubeconfig_paths(kubeconfig: str | os.PathLike[str] | None = None) -> list[Path]:
    """The kubeconfig files to read: the explicit one, else the ``KUBECONFIG`` list, else ``~/.kube/config``."""
    if kubeconfig:
        return [Path(kubeconfig).expanduser()]
    env = os.environ.get(KUBECONFIG_ENV, "")
    listed = [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    return listed or [Path(DEFAULT_KUBECONFIG).expanduser()]


def read_kubeconfig_file(path: Path) -> dict[str, Any]:
    """One kubeconfig file as a mapping ({} when empty), or one line naming the file and the fix.

    Raises:
        KubeconfigUnreadableError: unreadable, not UTF-8 text, not YAML, or not a mapping.
    """
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KubeconfigUnreadableError(f"The kubeconfig {path} is not text (it holds binary data). Restore it "
                                        f"from a backup or fetch a fresh one,", path=path) from None
    except OSError as exc:
        raise KubeconfigUnreadableError(f"Cannot read the kubeconfig {path} ({exc.strerror or exc}). Fix its "
                                        f"permissions,", path=path) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise KubeconfigUnreadableError(f"The kubeconfig {path} is not valid YAML ({problem}{where}). Fix "
                                        f"it,", path=path) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        kind = "plain text" if isinstance(document, str) else f"a YAML {type(document).__name__}"
        raise KubeconfigUnreadableError(f"The kubeconfig {path} is not a kubeconfig: it holds {kind}, not the "
                                        f"mapping of clusters, users and contexts kubectl writes. Fix it,",
                                        path=path)
    return document


def _named(entries: Any, key: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for entry in entries or ():
        if isinstance(entry, dict) and entry.get("name") is not None:
            found.setdefault(str(entry["name"]), entry.get(key) or {})
    return found


def load_kubeconfig(kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None) -> KubeconfigInfo:
    """Read and merge the kubeconfig files, and resolve the context to use.

    Args:
        kubeconfig: a kubeconfig path; ``None`` reads ``KUBECONFIG`` or ``~/.kube/config``.
        context: a context name; ``None`` uses ``DEVSERVERS_CONTEXT`` or the ``current-context``.

    Returns:
        The resolved ``KubeconfigInfo``.

    Raises:
        ConfigurationError: no readable kubeconfig, no context selected, or an unknown context
            (the message lists the known ones).

    Example:
        >>> info = load_kubeconfig("/tmp/kubeconfig")  # doctest: +SKIP
        >>> info.context, info.namespace
        ('devservers-local', 'default')
    """
    paths = kubeconfig_paths(kubeconfig)
    existing = [p for p in paths if p.is_file()]
    if not existing:
        shown = ", ".join(str(p) for p in paths)
        raise ConfigurationError(f"No kubeconfig found (looked at {shown}). Point KUBECONFIG at your cluster's "
                                 f"kubeconfig,", next_step=_LOCAL_UP, lead="or start a local cluster with")
    contexts: dict[str, dict[str, Any]] = {}
    clusters: dict[str, dict[str, Any]] = {}
    current = ""
    for path in existing:
        document = read_kubeconfig_file(path)
        for name, value in _named(document.get("contexts"), "context").items():
            contexts.setdefault(name, value)
        for name, value in _named(document.get("clusters"), "cluster").items():
            clusters.setdefault(name, value)
        current = current or str(document.get("current-context") or "")
    shown = ", ".join(str(p) for p in existing)
    chosen = context or os.environ.get(CONTEXT_ENV) or current
    if not chosen:
        raise ConfigurationError(f"The kubeconfig ({shown}) selects no context. Select one with: kubectl config "
                                 f"use-context NAME, or add the local cluster's", next_step=_LOCAL_UP, lead="with")
    if chosen not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise ConfigurationError(f"Context '{chosen}' is not in the kubeconfig ({shown}); known contexts: "
                                 f"{known}. Pick one of them, or select it for good with: kubectl config "
                                 f"use-context NAME")
    entry = contexts[chosen]
    cluster = str(entry.get("cluster") or "")
    return KubeconfigInfo(
        paths=tuple(str(p) for p in existing),
        context=chosen,
        cluster=cluster,
        server=str(clusters.get(cluster, {}).get("server") or ""),
        user=str(entry.get("user") or ""),
        namespace=str(entry["namespace"]) if entry.get("namespace") else None,
    )


def resolve_namespace(explicit: str | None, info: KubeconfigInfo | None) -> str:
    """explicit argument > ``DEVSERVERS_NAMESPACE`` > the context's namespace > ``default``."""
    return explicit or os.environ.get(NAMESPACE_ENV) or (info.namespace if info else None) or DEFAULT_NAMESPACE


def resolve_owner(explicit: str | None, *, whoami: Callable[[], str | None], info: KubeconfigInfo | None) -> str:
    """explicit argument > ``DEVSERVERS_OWNER`` > the server's idea of who we are > the kubeconfig user.

    Every value is taken as given: the owner policy compares ``spec.owner`` with the requesting user's name
    exactly, so the default owner is that name, e-mail address and all (``kubectl auth whoami``). The
    kubeconfig's user entry name is a last resort for clusters that do not serve SelfSubjectReview
    (Kubernetes before 1.28 without its beta API, or RBAC that forbids it); there it is only a guess, and a
    cluster with the owner policy refuses a wrong guess with a message naming the expected owner.

    Args:
        explicit: the ``owner=`` the caller gave, if any.
        whoami: asks the cluster (SelfSubjectReview); only called when nothing before it decides.
            It may return ``None`` (API not served, or not allowed).
        info: the kubeconfig, for the last resort.

    Raises:
        ConfigurationError: nothing names an owner.
    """
    owner = explicit or os.environ.get(OWNER_ENV) or whoami() or (info.user if info else None)
    if not owner:
        raise ConfigurationError(f"Cannot tell who you are: set {OWNER_ENV} to your user name.")
    return owner

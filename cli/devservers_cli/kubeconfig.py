"""Adding the local cluster to the user's kubeconfig, and taking it out again, as kind and minikube do.

``merge`` copies the cluster, user and context of the local cluster's own kubeconfig into the user's
(replacing entries of the same names, so a second ``up`` on a new port just works), selects the context,
and returns the context that was selected before so that ``remove`` can restore it. The file is
rewritten atomically with mode 0600 (it holds a token); other entries are kept as they were.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SECTIONS = ("clusters", "users", "contexts")


@dataclass(frozen=True)
class Entries:
    """The names the local cluster occupies in a kubeconfig."""

    context: str
    cluster: str
    user: str

    def name(self, section: str) -> str:
        return {"clusters": self.cluster, "users": self.user, "contexts": self.context}[section]


def read(path: Path) -> dict[str, Any]:
    """The kubeconfig at ``path`` ({} when there is none).

    Raises:
        KubeconfigUnreadableError: the file is no kubeconfig (bad YAML, binary, not a mapping); a
            ``ValueError``-free ``ConfigurationError`` whose message names the file and the fix.
    """
    from devservers_sdk.settings import read_kubeconfig_file

    if not path.is_file():
        return {}
    return read_kubeconfig_file(path)


def move_aside(path: Path) -> Path:
    """Rename an unusable kubeconfig to ``<name>.broken-<UTC time>`` next to it, never over another file."""
    from datetime import UTC, datetime

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.broken-{stamp}")
    counter = 1
    while aside.exists():
        counter += 1
        aside = path.with_name(f"{path.name}.broken-{stamp}-{counter}")
    os.replace(path, aside)
    return aside


def write(path: Path, document: dict[str, Any]) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(document, handle, sort_keys=False)
    os.replace(tmp, path)


def entries_of(source: dict[str, Any]) -> Entries:
    """The context, cluster and user named by a single-context kubeconfig's current context."""
    context_name = source["current-context"]
    context = next(c["context"] for c in source["contexts"] if c["name"] == context_name)
    return Entries(context=context_name, cluster=context["cluster"], user=context["user"])


def merge(path: Path, source: dict[str, Any]) -> tuple[Entries, str | None]:
    """Copy the current context of ``source`` (with its cluster and user) into ``path`` and select it.

    Returns:
        The entries written, and the context ``path`` selected before (``None`` if none, or if it was
        already this one).
    """
    entries = entries_of(source)
    document = read(path)
    document.setdefault("apiVersion", "v1")
    document.setdefault("kind", "Config")
    for section in _SECTIONS:
        wanted = entries.name(section)
        incoming = [item for item in source.get(section) or [] if item.get("name") == wanted]
        kept = [item for item in document.get(section) or [] if item.get("name") != wanted]
        document[section] = kept + incoming
    previous = document.get("current-context") or None
    document["current-context"] = entries.context
    write(path, document)
    return entries, (previous if previous != entries.context else None)


def remove(path: Path, entries: Entries, previous: str | None) -> str | None:
    """Take the entries out of ``path``; if their context was selected, select ``previous`` again.

    Returns:
        The context selected afterwards (``None``: none).
    """
    document = read(path)
    if not document:
        return None
    for section in _SECTIONS:
        if section in document:
            document[section] = [item for item in document[section] or []
                                 if item.get("name") != entries.name(section)]
    current = document.get("current-context") or None
    if current == entries.context:
        known = {item.get("name") for item in document.get("contexts") or []}
        current = previous if previous in known else None
        if current:
            document["current-context"] = current
        else:
            document.pop("current-context", None)
    write(path, document)
    return current


def selected(path: Path) -> str | None:
    """The current context of one kubeconfig file."""
    from devservers_sdk.errors import DevServerError

    try:
        return read(path).get("current-context") or None
    except (OSError, ValueError, DevServerError):
        return None

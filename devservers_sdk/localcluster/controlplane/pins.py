"""Where the pinned Go modules live, and how to read a go.mod: shared by ``gomod.py`` (writes them) and
``build.py`` (builds from them), so that importing the builder does not import the regeneration script."""

from __future__ import annotations

import re
from pathlib import Path

GO_MODULES = Path(__file__).parent / "go"
KUBERNETES_MODULE = GO_MODULES / "kubernetes"
ETCD_MODULE = GO_MODULES / "etcd"
KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")

GO_LINE = re.compile(r"^go[ \t]+(\d+(?:\.\d+)*)[ \t]*$", re.MULTILINE)
_REQUIRE = re.compile(r"^\s*(?:require\s+)?(\S+)\s+(v\S+)", re.MULTILINE)


def go_directive(go_mod: str) -> str:
    """The ``go`` line of a go.mod: the oldest Go that may build it."""
    match = GO_LINE.search(go_mod)
    if match is None:
        raise ValueError("go.mod has no 'go' line")
    return match.group(1)


def required_version(go_mod: str, module: str) -> str:
    """The version of ``module`` that a go.mod requires."""
    for name, version in _REQUIRE.findall(go_mod):
        if name == module:
            return version
    raise ValueError(f"go.mod does not require {module}")

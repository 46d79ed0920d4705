"""Every exception class of the SDK has one home, ``errors.py``, and its docstring draws every one of them.

Why: error classes had drifted into ``launch``, ``kube``, ``lifecycle``, ``settings`` and ``tracking``, outside
the documented tree, so a front end could not learn from one place what it may have to catch. The test walks
the package (``localcluster`` aside: it is generic Kubernetes and may not import ``errors``) and reads the tree
from the docstring, checking each drawn parent against the class's real bases. No cluster needed.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil
import re

import devservers_sdk
from devservers_sdk import errors

_GENERIC = "devservers_sdk.localcluster"


def _sdk_modules() -> list[str]:
    names = [info.name for info in pkgutil.walk_packages(devservers_sdk.__path__, "devservers_sdk.")]
    return sorted(name for name in names if name != _GENERIC and not name.startswith(_GENERIC + "."))


def _public_exceptions_defined_in(module_name: str) -> set[str]:
    module = importlib.import_module(module_name)
    return {name for name, value in vars(module).items()
            if inspect.isclass(value) and issubclass(value, BaseException)
            and value.__module__ == module_name and not name.startswith("_")}


def _drawn_tree() -> dict[str, str]:
    """Each class drawn in the errors docstring, mapped to the class drawn as its parent (a root's is Exception)."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        root = re.fullmatch(r" {4}(\w+)", line)
        node = re.match(r" {4}([│ ]*)[├└]── (\w+)", line)
        if root:
            stack = [(0, root.group(1))]
            if root.group(1) != "Exception":
                parents[root.group(1)] = "Exception"
        elif node:
            depth = len(node.group(1)) // 4 + 1
            stack = stack[:depth]
            assert stack, f"the tree line {line!r} has no root above it"
            parents[node.group(2)] = stack[-1][1]
            stack.append((depth, node.group(2)))
    return parents


def test_no_exception_class_is_defined_outside_errors() -> None:
    strays = {module: found for module in _sdk_modules() if module != errors.__name__
              if (found := _public_exceptions_defined_in(module))}
    assert strays == {}, f"define these in devservers_sdk/errors.py and draw them in its docstring: {strays}"


def test_the_docstring_draws_every_error_under_its_real_parent() -> None:
    drawn = _drawn_tree()
    defined = _public_exceptions_defined_in(errors.__name__)
    assert set(drawn) == defined, (f"missing from the tree: {sorted(defined - set(drawn))}; "
                                   f"drawn but not defined: {sorted(set(drawn) - defined)}")
    wrong = {name: parent for name, parent in drawn.items()
             if (getattr(errors, parent, None) or getattr(builtins, parent)) not in getattr(errors, name).__bases__}
    assert wrong == {}, f"drawn under a class that is not their base: {wrong}"


def test_every_error_a_caller_may_catch_is_exported_by_the_package() -> None:
    defined = _public_exceptions_defined_in(errors.__name__)
    assert defined <= set(errors.__all__)
    # The watch restarts are caught inside kube (list again, watch again); every other error may reach a caller.
    user_facing = {name for name in defined if issubclass(getattr(errors, name), errors.DevServerError)}
    missing = user_facing - {"WatchDropped", "WatchExpired"} - set(devservers_sdk.__all__)
    assert missing == set(), f"add to devservers_sdk.__all__ and _EXPORTS: {sorted(missing)}"
    for name in user_facing - {"WatchDropped", "WatchExpired"}:
        assert getattr(devservers_sdk, name) is getattr(errors, name)

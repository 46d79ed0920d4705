"""Notebook front end of devservers: ``%devserver`` magics, ``%%devserver run`` and ``launch`` cells, widgets.

Load it in IPython or Jupyter with::

    %load_ext devservers_magics

which registers ``DevServerMagics`` (and how the SDK's objects are displayed) and does nothing else: no
cluster access, and no import of the SDK, ``kubernetes`` or ``ipywidgets`` until a verb needs them.
``%devserver?`` lists every verb with its options and an example.

``DevServerUI`` (the create form and the DevServer list) is importable from here for use with any client::

    from devservers_magics import DevServerUI
    DevServerUI(DevServerClient(namespace="ml"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .magics import DevServerMagics

if TYPE_CHECKING:
    from .widgets import CreateForm, DevServerList, DevServerUI

__all__ = [
    "CreateForm",
    "DevServerList",
    "DevServerMagics",
    "DevServerUI",
    "load_ipython_extension",
    "unload_ipython_extension",
]

_WIDGETS = ("CreateForm", "DevServerList", "DevServerUI")


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext devservers_magics``."""
    from .tables import register_formatters

    ipython.register_magics(DevServerMagics)
    register_formatters(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Called by ``%unload_ext devservers_magics``: the magics and the formatters go away."""
    from .tables import unregister_formatters

    unregister_formatters(ipython)
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("devserver", None)
    ipython.magics_manager.registry.pop("DevServerMagics", None)


def __getattr__(name: str) -> Any:
    # ipywidgets costs 0.1 s to import: only when a widget is asked for.
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

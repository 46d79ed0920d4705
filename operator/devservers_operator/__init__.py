"""The devservers operator: DevServers become StatefulSets, Services and home volumes, with an honest status.

Run it with ``python -m devservers_operator`` (settings from ``DEVSERVERS_*`` variables, see ``settings``)
or ``kopf run -m devservers_operator``. Importing the package registers the kopf handlers.

Layers, thin to thick: ``handlers`` (kopf: caches and triggers) → ``workqueue`` (when) → ``reconcile``
(what: read caches → the SDK's pure builders → apply → status) → ``devservers_sdk.kube_async``
(the wire).
"""

from __future__ import annotations

from . import handlers
from .settings import OperatorSettings

__all__ = ["OperatorSettings", "handlers"]

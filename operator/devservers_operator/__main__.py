"""``python -m devservers_operator``: kopf in standalone mode, namespaces and liveness from the environment.

Standalone: no kopf peering objects and no leader election, so run one replica (the Deployment uses the
``Recreate`` strategy). ``DEVSERVERS_NAMESPACES`` (comma-separated; empty: the whole cluster) and
``DEVSERVERS_LIVENESS`` (default ``http://0.0.0.0:8080/healthz``; empty: none) are read here; every other
setting is read at startup (``settings.OperatorSettings.from_env``).
"""

from __future__ import annotations

import logging
import os
import sys

import kopf

from . import handlers  # noqa: F401  (registers the handlers)
from .settings import OperatorSettings


def main() -> int:
    try:
        settings = OperatorSettings.from_env()
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    verbose = os.environ.get("DEVSERVERS_LOG_LEVEL", "").strip().upper() == "DEBUG"
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.FULL)
    if not verbose:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    kopf.run(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness,
        memo=kopf.Memo(settings=settings),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

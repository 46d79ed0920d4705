"""devservers SDK: personal PyTorch development servers on Kubernetes.

Everything else (``devctl``, the ``%devserver`` magics, the operator) is built on this package::

    from devservers_sdk import DevServerClient

    client = DevServerClient()
    client.create("mydev", flavor="cpu-small", time_to_live="4h", wait=True)
    print(client.exec("mydev", ["python", "-c", "print('hello')"]).stdout)

Names are imported on first use, so ``import devservers_sdk`` costs about a millisecond and tools that
need only a part (``devctl --help``) never pay for the ``kubernetes`` client or pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DevServerClient": "client",
    "DevServerDescription": "client",
    "ExecResult": "exec",
    "DevServer": "models",
    "DevServerFlavor": "models",
    "DevServerSpec": "models",
    "DevServerFlavorSpec": "models",
    "DevServerStatus": "models",
    "DistributedSpec": "models",
    "LifecycleSpec": "models",
    "Condition": "models",
    "DevServerError": "errors",
    "ConfigurationError": "errors",
    "ClusterUnreachableError": "errors",
    "ClusterFailingError": "errors",
    "AuthenticationError": "errors",
    "PermissionDeniedError": "errors",
    "NotFoundError": "errors",
    "DevServerNotFoundError": "errors",
    "FlavorNotFoundError": "errors",
    "AlreadyExistsError": "errors",
    "ConflictError": "errors",
    "InvalidSpecError": "errors",
    "ServerError": "errors",
    "DevServerNotReadyError": "errors",
    "WaitTimeoutError": "errors",
    "WaitCancelledError": "errors",
    "Cancellation": "cancellation",
    "LiveDevServers": "live",
    "DevServerFailedError": "errors",
    "ExecError": "errors",
    "KubeconfigUnreadableError": "errors",
    "NamespaceTerminatingError": "errors",
    "TrackingUnavailableError": "errors",
    "CheckpointManager": "checkpoint",
    "LaunchHandle": "launch",
    "LaunchFailedError": "errors",
    "LaunchTimeoutError": "errors",
    "NotDistributedError": "errors",
    "NextStep": "next_steps",
    "LifetimeLimitError": "errors",
    "RetryPolicy": "kube",
    "parse_duration": "durations",
    "format_duration": "durations",
    "parse_quantity": "quantities",
}

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "Cancellation",
    "CheckpointManager",
    "ClusterFailingError",
    "ClusterUnreachableError",
    "Condition",
    "ConfigurationError",
    "ConflictError",
    "DevServer",
    "DevServerClient",
    "DevServerDescription",
    "DevServerError",
    "DevServerFailedError",
    "DevServerFlavor",
    "DevServerFlavorSpec",
    "DevServerNotFoundError",
    "DevServerNotReadyError",
    "DevServerSpec",
    "DevServerStatus",
    "DistributedSpec",
    "ExecError",
    "ExecResult",
    "FlavorNotFoundError",
    "InvalidSpecError",
    "KubeconfigUnreadableError",
    "LaunchFailedError",
    "LaunchHandle",
    "LaunchTimeoutError",
    "LifecycleSpec",
    "LifetimeLimitError",
    "LiveDevServers",
    "NamespaceTerminatingError",
    "NextStep",
    "NotDistributedError",
    "NotFoundError",
    "PermissionDeniedError",
    "RetryPolicy",
    "ServerError",
    "TrackingUnavailableError",
    "WaitCancelledError",
    "WaitTimeoutError",
    "format_duration",
    "parse_duration",
    "parse_quantity",
]

if TYPE_CHECKING:
    from .cancellation import Cancellation
    from .checkpoint import CheckpointManager
    from .client import DevServerClient, DevServerDescription
    from .durations import format_duration, parse_duration
    from .errors import (
        AlreadyExistsError,
        AuthenticationError,
        ClusterFailingError,
        ClusterUnreachableError,
        ConfigurationError,
        ConflictError,
        DevServerError,
        DevServerFailedError,
        DevServerNotFoundError,
        DevServerNotReadyError,
        ExecError,
        FlavorNotFoundError,
        InvalidSpecError,
        KubeconfigUnreadableError,
        LaunchFailedError,
        LaunchTimeoutError,
        LifetimeLimitError,
        NamespaceTerminatingError,
        NotDistributedError,
        NotFoundError,
        PermissionDeniedError,
        ServerError,
        TrackingUnavailableError,
        WaitCancelledError,
        WaitTimeoutError,
    )
    from .exec import ExecResult
    from .kube import RetryPolicy
    from .launch import LaunchHandle
    from .live import LiveDevServers
    from .models import (
        Condition,
        DevServer,
        DevServerFlavor,
        DevServerFlavorSpec,
        DevServerSpec,
        DevServerStatus,
        DistributedSpec,
        LifecycleSpec,
    )
    from .next_steps import NextStep
    from .quantities import parse_quantity


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'devservers_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""What connect's modules use of a client; ``DevServerClient`` is one, and passes itself.

The client's convenience methods (``port_forward``, ``copy_to``, ``sync``, ``ssh_config``, ``jupyter``...)
import these modules, so the modules name this protocol instead of the client: naming the client formed an
import circle, which import-linter's ``sdk-has-no-import-circle`` contract now refuses. Three of the client's
private parts are still listed: port-forward and ssh-proxy reach the kube layer, find the running pod and
record activity as the client does. Handing them narrower callables, as ``launch.LaunchTarget`` does for a
launch, is the next step.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..exec import ExecResult, ExecStream, StdinSource
    from ..kube import Kube
    from ..models import DevServer

__all__ = ["ConnectClient"]


class ConnectClient(Protocol):
    """The part of ``DevServerClient`` that port-forward, files, ssh and jupyter use (it documents each)."""

    namespace: str

    @property
    def kube(self) -> Kube: ...

    def get(self, name: str) -> DevServer: ...

    def list(self, *, owner: str | None = None, all_namespaces: bool = False) -> builtins.list[DevServer]: ...

    def exec(self, name: str, command: str | Sequence[str], *, rank: int = 0,
             stdin: StdinSource | None = None, timeout: float | None = None, check: bool = False,
             text: bool = True, container: str | None = None) -> ExecResult: ...

    def exec_stream(self, name: str, command: str | Sequence[str], *, rank: int = 0,
                    stdin: StdinSource | None = None, timeout: float | None = None, check: bool = False,
                    text: bool = True, container: str | None = None) -> ExecStream: ...

    def shell(self, name: str, *, rank: int = 0, command: str | Sequence[str] | None = None,
              container: str | None = None, stdin: IO[Any] | None = None, stdout: IO[Any] | None = None,
              activity: str = "shell") -> int: ...

    def running_pod(self, name: str, rank: int = 0) -> str: ...

    def record_activity(self, name: str, source: str | None = None) -> None: ...

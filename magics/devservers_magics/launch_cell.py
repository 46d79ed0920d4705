"""``%%devserver launch``: a notebook cell becomes a script on every rank and runs there under torchrun.

How the cell travels. On a real cluster the pods do not see the notebook's files, so the cell is written
into each rank through ``exec`` with the source on stdin (``cat > file``: nothing of the cell goes into
the command line, which travels in a URL of limited length), concurrently for all ranks. Then one call to
the SDK's ``launch`` runs ``torchrun <file> <args>`` on every rank, as ``devctl launch`` would.

Where the file goes. torchrun gets the same arguments on every rank, so the file must have the same
absolute path everywhere. The first choice is the home (``~/.cache/devservers/launch``): a DevServer's
home is its own volume at the same path in every pod, and the file stays there to look at after a failure.
Each rank reports the path it wrote; if they differ (an image with per-pod homes) or the home is not
writable, the cell goes to ``/tmp/devservers-launch`` instead, the same path by construction. The name
is a hash of the source, so rerunning a cell rewrites the same file, and concurrent runs of different
cells cannot clash; it is written under a temporary name and renamed, so a rank never sees half of it.

Output. Every line arrives as ``(rank, stream, line)`` and is printed ``[rank N] line`` to the cell's
stdout or stderr as it comes. The iteration happens in the kernel's main thread, so the kernel's
interrupt (a ``KeyboardInterrupt`` there) reaches the SDK's handle, which stops every rank before it
propagates.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devservers_sdk.client import DevServerClient
    from devservers_sdk.errors import LaunchFailedError
    from devservers_sdk.launch import LaunchHandle

    from .remote_cell import TextSink

__all__ = ["FALLBACK_DIRECTORY", "failure_message", "print_lines", "script_name", "write_everywhere"]

FALLBACK_DIRECTORY = "/tmp/devservers-launch"
_MAX_CONCURRENT_WRITES = 8
# $1: the directory ("" for the home one), $2: the file name. Prints the absolute path written.
_WRITE = (
    'd=${1:-"$HOME/.cache/devservers/launch"}; f="$d/$2"; '
    'mkdir -p "$d" && cat > "$f.partial.$$" && mv -f "$f.partial.$$" "$f" && '
    'case "$f" in /*) printf "%s\\n" "$f";; *) printf "%s/%s\\n" "$(pwd)" "$f";; esac'
)


def script_name(source: str) -> str:
    """``cell-<hash>.py``: the same cell, the same file."""
    return f"cell-{hashlib.sha256(source.encode('utf-8')).hexdigest()[:12]}.py"


def _write(client: DevServerClient, name: str, ranks: int, directory: str, filename: str,
           data: bytes) -> list[str]:
    """Write ``data`` on every rank; returns the absolute path each rank reports, in rank order."""

    def one(rank: int) -> str:
        result = client.exec(name, ["/bin/sh", "-c", _WRITE, "devservers-launch-write", directory, filename],
                             rank=rank, stdin=data, check=True)
        return str(result.stdout).strip()

    with ThreadPoolExecutor(max_workers=min(ranks, _MAX_CONCURRENT_WRITES),
                            thread_name_prefix="devservers-launch-write") as pool:
        return list(pool.map(one, range(ranks)))


def write_everywhere(client: DevServerClient, name: str, ranks: int, source: str) -> str:
    """Write the cell into each of ``ranks`` ranks of DevServer ``name``; returns its path (the same on all).

    Raises:
        DevServerError: from the SDK, e.g. ``DevServerNotReadyError`` when a rank's pod is not running.
    """
    from devservers_sdk.errors import ExecError

    filename, data = script_name(source), source.encode("utf-8")
    try:
        paths = _write(client, name, ranks, "", filename, data)
    except ExecError:  # e.g. a read-only home: the fallback below is the same path on every rank
        paths = []
    if paths and len(set(paths)) == 1:
        return paths[0]
    return _write(client, name, ranks, FALLBACK_DIRECTORY, filename, data)[0]


def print_lines(handle: LaunchHandle, stdout: TextSink, stderr: TextSink) -> None:
    """Print every line of the launch as ``[rank N] line`` (N: the global rank of the process that printed it;
    ``LaunchLine.label``) as it arrives, on its own stream."""
    for event in handle:
        _, stream, line = event
        sink = stderr if stream == "stderr" else stdout
        sink.write(f"{event.label} {line}\n")
        sink.flush()


def failure_message(error: LaunchFailedError) -> str:
    """The SDK's sentence without the failing rank's last lines (the cell has just shown them)."""
    return error.render("magic").split(" Last output of rank", 1)[0]


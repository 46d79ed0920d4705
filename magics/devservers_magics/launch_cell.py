"""``%%devserver launch``: a notebook cell becomes a script on every rank and runs there under torchrun.

The SDK does the work: ``DevServerClient.launch(name, args, source=cell)`` writes the cell to every rank at
one absolute path (``devservers_sdk.launch.write_script`` says where and how) and runs ``torchrun <file>
<args>`` there, as ``devctl launch`` would. What is left here is how the cell shows the launch.

Output. Every line arrives as ``(rank, stream, line)`` and is printed ``[rank N] line`` to the cell's
stdout or stderr as it comes. The iteration happens in the kernel's main thread, so the kernel's
interrupt (a ``KeyboardInterrupt`` there) reaches the SDK's handle, which stops every rank before it
propagates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devservers_sdk.errors import LaunchFailedError
    from devservers_sdk.launch import LaunchHandle

    from .remote_cell import TextSink

__all__ = ["failure_message", "print_lines"]


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


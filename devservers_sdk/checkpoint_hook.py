"""The command that runs a DevServer's ``spec.lifecycle.checkpoint`` hook in a pod, the same way for both
paths that run it:

* the operator execs it on every rank before a stop it starts itself (idle stop, expiry, a restart for a
  new flavor or image), and reads the exit code, duration and output for the Event and ``status.lastCheckpoint``;
* the kubelet runs it as the container's ``preStop`` hook for the stops nobody announces to the operator
  (an eviction, ``kubectl drain``, a reclaimed spot node), within a ``terminationGracePeriodSeconds`` that
  covers its timeout.

Both would run on an operator-started stop (the operator's exec, then the preStop of the pod deletion that
follows), so the exec leaves a marker named after the pod's uid in the home, and the preStop of that pod
skips the hook once: a checkpoint is taken once per stop, and a hook that hung is not waited for twice. The
uid makes the marker belong to one pod only, though the home outlives it.

The hook is cut at ``timeoutSeconds`` by coreutils ``timeout`` where the image has it (SIGTERM, then SIGKILL
2 s later); a preStop without it is still bounded by the grace period.
"""

from __future__ import annotations

from .models import CheckpointHook

__all__ = ["POD_UID_ENV", "STOP_MARGIN_SECONDS", "TIMED_OUT_CODES", "hook_command", "termination_grace"]

POD_UID_ENV = "DEVSERVER_POD_UID"
STOP_MARGIN_SECONDS = 10
"""Seconds of the grace period beyond the hook's timeout: the SIGKILL after ``timeout``, then the main
process's own SIGTERM handling."""
TIMED_OUT_CODES = (124, 137)
"""What ``timeout`` exits with when it cut the command (SIGTERM worked, or SIGKILL was needed)."""

_SCRIPT = r"""t=$1; mark=$2; shift 2
m="${HOME:-/tmp}/.devservers/checkpointed-${DEVSERVER_POD_UID:-unknown}"
if [ "$mark" = skip-if-marked ] && [ -e "$m" ]; then
  rm -f "$m"; echo "devservers: the checkpoint hook already ran before this stop"; exit 0
fi
if command -v timeout >/dev/null 2>&1; then timeout -k 2 "$t" "$@" 2>&1; rc=$?; else "$@" 2>&1; rc=$?; fi
if [ "$mark" = mark ]; then mkdir -p "${m%/*}" && : > "$m"; fi
exit $rc"""


def hook_command(hook: CheckpointHook, *, by_operator: bool) -> list[str]:
    """The argv that runs ``hook`` in a pod: the operator's exec (which marks the pod) or the preStop (which
    skips once when marked)."""
    return ["sh", "-c", _SCRIPT, "devservers-checkpoint", str(hook.timeout_seconds),
            "mark" if by_operator else "skip-if-marked", *hook.command]


def termination_grace(hook: CheckpointHook | None, default: int) -> int:
    """The pods' ``terminationGracePeriodSeconds``: the operator's default, or longer to cover the hook."""
    if hook is None:
        return default
    return max(default, hook.timeout_seconds + STOP_MARGIN_SECONDS)

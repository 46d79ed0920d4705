"""The in-pod idle probe: a tiny POSIX shell script run through ``pods/exec``, and its parser.

``lifecycle.plan`` asks for a probe (``Decision.probe_wanted``) only once a server's annotation-based
idle deadline has passed, so most servers are never probed and a busy one at most once per idle timeout.
The probe is the only witness of work started with ``nohup``, a notebook kernel or a training job, so it
looks at the processes of the container itself:

* **Which processes**: those in the probe's own mount namespace (``[ /proc/<pid>/ns/mnt -ef
  /proc/$$/ns/mnt ]``), i.e. the container's processes even where ``/proc`` shows the whole host (a
  container without its own PID namespace, or the local cluster's kubelet). The probe shell itself is
  left out.
* **Interactive sessions**: processes whose stdin is a terminal (``/dev/pts/*``: ``kubectl exec -it``,
  ssh, tmux panes) plus Jupyter kernels (``ipykernel`` in the command line).
* **JupyterLab's own view** (``devctl jupyter``, whose state file in the home names its port and token):
  asked after the CPU window, ``/api/kernels`` says which kernels are busy or have a client connected, as
  the Kubeflow notebook culler asks. Those count; an idle kernel nobody is connected to does not (a
  notebook left open in a closed laptop's tab must not keep a GPU forever). Kernel processes that server
  does not know (started by other means) still count.
* **CPU**: ``utime + stime`` of every such process (``/proc/<pid>/stat`` fields 14 and 15), sampled
  twice ``window`` seconds apart; a process that started in between counts whole. Divided by the window
  it is the cores in use, compared with ``lifecycle.CPU_ACTIVE_CORES``.
* **GPU**: every GPU's index, utilisation and memory from ``nvidia-smi`` when the image has it, one
  ``gpu=<index>, <percent>, <used MiB>, <total MiB>`` line each (``status.gpus``; the busiest counts as use).

Only shell built-ins run during the CPU window, so the probe does not measure itself. A probe that fails
(no ``/bin/sh``, exec refused, timeout, unreadable output) becomes a ``ProbeReport`` with ``error``: it
proves nothing, and ``plan`` never stops a server on it.
"""

from __future__ import annotations

from datetime import datetime

from devservers_sdk.lifecycle import GpuReading, ProbeReport

__all__ = ["JUPYTER_QUERY", "PROBE_SCRIPT", "parse_probe", "probe_command"]

PROBE_SCRIPT = r"""
window=${1:-1}
jupyter_query=$2  # kept: the loops below reuse the positional parameters
self=/proc/$$/ns/mnt
pids=""
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  [ "$d/ns/mnt" -ef "$self" ] || continue
  { read -r line < "$d/stat"; } 2>/dev/null || continue
  set -- ${line##*") "}
  v=$(( ${12} + ${13} ))
  eval "t_$p=$v"
  pids="$pids $p"
done
sleep "$window"
ticks=0
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  [ "$d/ns/mnt" -ef "$self" ] || continue
  { read -r line < "$d/stat"; } 2>/dev/null || continue
  set -- ${line##*") "}
  v=$(( ${12} + ${13} ))
  eval "before=\${t_$p:-0}"
  [ "$v" -lt "$before" ] && before=0
  ticks=$(( ticks + v - before ))
done
sessions=0
kernels=0
for p in $pids; do
  d=/proc/$p
  [ -d "$d" ] || continue
  case $(readlink "$d/fd/0" 2>/dev/null) in /dev/pts/*) sessions=$(( sessions + 1 ));; esac
  case $(tr '\0' ' ' < "$d/cmdline" 2>/dev/null) in *ipykernel*) kernels=$(( kernels + 1 ));; esac
done
jupyter_state="$HOME/.devservers/jupyter/server.json"
if [ -f "$jupyter_state" ] && command -v python3 >/dev/null 2>&1; then
  answer=$(python3 -c "$jupyter_query" "$jupyter_state" 2>/dev/null) || answer=""
  case $answer in
    *" "*)
      total=${answer%% *}
      extra=$(( kernels - total ))
      [ "$extra" -lt 0 ] && extra=0
      kernels=$(( ${answer#* } + extra ))
      echo "jupyter_kernels=$total";;
  esac
fi
echo "sessions=$sessions"
echo "kernels=$kernels"
echo "cpu_ticks=$ticks"
echo "clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)"
echo "window=$window"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits 2>/dev/null |
    while IFS= read -r l; do echo "gpu=$l"; done
fi
"""


# argv[1]: the state file of ``devctl jupyter``. Prints "<kernels> <busy or connected kernels>".
JUPYTER_QUERY = (
    "import json, sys, urllib.request\n"
    "state = json.load(open(sys.argv[1]))\n"
    "url = 'http://127.0.0.1:%d/api/kernels?token=%s' % (state['port'], state['token'])\n"
    "kernels = json.load(urllib.request.urlopen(url, timeout=5))\n"
    "print(len(kernels), sum(1 for k in kernels if k.get('execution_state') == 'busy' or k.get('connections', 0) > 0))\n"
)


def probe_command(window: float) -> list[str]:
    """The argv to exec: ``/bin/sh -c <script> devservers-probe <window> <jupyter query>``."""
    return ["/bin/sh", "-c", PROBE_SCRIPT, "devservers-probe", f"{window:g}", JUPYTER_QUERY]


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None  # "[N/A]" (no memory figures on some GPUs): unknown, not an error


def _gpu_lines(lines: list[str], rank: int) -> tuple[list[float], list[GpuReading]]:
    """Utilisations, and the full readings of the ``index, percent, used, total`` lines."""
    utilizations: list[float] = []
    readings: list[GpuReading] = []
    for position, line in enumerate(lines):
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 4:
            utilization = float(parts[1])
            index = int(parts[0]) if parts[0].isdigit() else position
            readings.append(GpuReading(rank, index, utilization, _number(parts[2]), _number(parts[3])))
            utilizations.append(utilization)
        else:  # the older form: every utilisation on one line
            utilizations.extend(float(part) for part in line.replace(",", " ").split() if part)
    return utilizations, readings


def parse_probe(
    stdout: str, *, observed_at: datetime, returncode: int = 0, stderr: str = "", rank: int = 0
) -> ProbeReport:
    """The script's ``key=value`` lines as a ``ProbeReport``; anything unexpected is a failed report."""
    if returncode != 0:
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        return ProbeReport(
            observed_at=observed_at, error=f"the probe exited with code {returncode}: {detail}"
        )
    values: dict[str, str] = {}
    gpu_lines: list[str] = []
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "gpu":
            if value.strip():
                gpu_lines.append(value.strip())
        elif sep:
            values[key.strip()] = value.strip()
    try:
        sessions = int(values["sessions"]) + int(values.get("kernels") or 0)
        ticks = int(values["cpu_ticks"])
        clock = int(values.get("clk_tck") or 100) or 100
        window = float(values["window"])
        gpus, readings = _gpu_lines(gpu_lines, rank)
    except (KeyError, ValueError) as exc:
        return ProbeReport(
            observed_at=observed_at,
            error=f"unreadable probe output ({type(exc).__name__}: {exc}): {stdout[:200]!r}",
        )
    return ProbeReport(
        observed_at=observed_at,
        interactive_sessions=sessions,
        cpu_seconds=max(ticks, 0) / clock,
        window_seconds=window,
        gpu_utilization=max(gpus) if gpus else None,
        gpus=tuple(readings),
    )

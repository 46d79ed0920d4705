"""Distributed launch: ``torchrun`` on every rank of a DevServer at once, and one handle on all of them.

A distributed DevServer is ``worldSize`` pods whose environment already says everything torchrun needs
(``PET_NNODES``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR``... see ``manifests.distributed_env``), so
``launch`` runs the same ``python -m torch.distributed.run <script> <args>`` on every pod, one exec
session per rank, each pumped by a thread of its own. The user's command is only the script and its
arguments (``train.py --epochs 3``; ``python train.py``, ``-m package.module`` and other programs work
too, see ``torchrun_args``).

Why the pieces are shaped this way:

* **One log, many readers.** Every output line becomes an event ``(rank, stream, line)`` appended to one
  bounded log under a condition variable. ``LaunchHandle.events()`` readers each keep their own position,
  so a CLI printing lines, a notebook widget and ``logs(rank=1)`` all see everything, from the start,
  without a queue per consumer.
* **Stopping must work on a real cluster.** Closing an exec stream does *not* kill the command on real
  Kubernetes (the runtime keeps it running; only the emulator kills the process group), and torchrun
  starts its workers in sessions of their own, so no single process group holds a rank's processes.
  Every process a launch starts therefore carries the variable ``DEVSERVERS_LAUNCH=<launch id>-<rank>``
  (workers inherit it from torchrun), and stopping a rank execs a small Python script in its pod that
  finds the processes whose ``/proc/<pid>/environ`` holds that entry, sends them SIGTERM (torchrun
  forwards it to its workers), and SIGKILLs whatever is left after ``STOP_GRACE`` seconds. Only then is
  the rank's stream closed. The entry names the rank because the emulator has no PID namespaces.
* **Fail fast, name the culprit.** The first rank to exit non-zero (or to lose its connection) stops all
  the others; ``wait()`` then raises ``LaunchFailedError`` naming that rank, its exit code, the worker's
  own exit code from torchrun's report, and the last lines its script printed.
* **Interrupts stop the job.** ``KeyboardInterrupt`` (Ctrl-C in a terminal, "interrupt kernel" in
  Jupyter) during ``wait()`` or the iteration stops every rank before it propagates.

The pods' Python is the first of ``python3``/``python`` on their ``PATH``; it must have torch, and runs
torchrun in the same process that set itself up (one interpreter start-up per rank, not two).
Every launch has a run-group id, in ``DEVSERVERS_RUN_GROUP`` and ``WANDB_RUN_GROUP`` of every process, which
``tracking.start_run`` records with the run. ``PYTHONUNBUFFERED=1`` is set so that lines arrive as they are printed, and ``DEVSERVER_BACKEND`` holds
the DevServer's ``spec.distributed.backend`` for scripts that want to follow it.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import contextlib
import hashlib
import json
import math
import re
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from . import exec as exec_
from .activity import ActivityHeartbeat
from .errors import (
    DevServerError,
    DevServerNotReadyError,
    ExecError,
    InvalidSpecError,
    LaunchFailedError,
    LaunchTimeoutError,
    NotDistributedError,
    WaitTimeoutError,
)
from .kube import STDERR, STDOUT, ExecSession
from .models import DevServer, env_name_problem
from .next_steps import NextStep
from .tracking_settings import GIT_COMMIT_ENV, RUN_GROUP_ENV
from .views import pod_rank, pod_ready

if TYPE_CHECKING:
    from .checkpoint import CheckpointInfo, CheckpointListing

__all__ = [
    "MARKER_ENV",
    "SCRIPT_FALLBACK_DIRECTORY",
    "LaunchEvent",
    "LaunchFailedError",
    "LaunchHandle",
    "LaunchLine",
    "LaunchTarget",
    "LaunchTimeoutError",
    "NotDistributedError",
    "OpenSession",
    "OutputCallback",
    "launch",
    "ranks_not_ready",
    "script_name",
    "torchrun_args",
    "validate_env",
    "write_script",
]

MARKER_ENV = "DEVSERVERS_LAUNCH"
"""Set to ``<launch id>-<rank>`` on every process of a launch: how ``cancel`` finds them in a pod."""
STOP_GRACE = 3.0
"""Seconds between SIGTERM and SIGKILL when a rank is stopped."""
TAIL_LINES = 20
RETAINED_LINES = 200_000
"""Output lines kept by a handle (all ranks); older ones are dropped from ``logs`` and late readers."""
_LINE_LIMIT = 16 * 1024
_PUMP_INTERVAL = 0.2
_START_TIMEOUT = 60.0
SCRIPT_FALLBACK_DIRECTORY = "/tmp/devservers-launch"
"""Where ``write_script`` puts a script when the ranks' homes are not one path (or not writable)."""
_MAX_CONCURRENT_WRITES = 8
# $1: the directory ("" for the home one), $2: the file name. Prints the absolute path written.
_WRITE = (
    'd=${1:-"$HOME/.cache/devservers/launch"}; f="$d/$2"; '
    'mkdir -p "$d" && cat > "$f.partial.$$" && mv -f "$f.partial.$$" "$f" && '
    'case "$f" in /*) printf "%s\\n" "$f";; *) printf "%s/%s\\n" "$(pwd)" "$f";; esac'
)


class OpenSession(Protocol):
    """The kube layer's ``exec`` bound to the DevServer's namespace (``exec.OpenSession``, with a timeout for
    opening the connection)."""

    def __call__(self, pod: str, argv: Sequence[str], /, *, container: str | None = None, stdin: bool = False,
                 tty: bool = False, timeout: float | None = None) -> ExecSession: ...


@dataclass(frozen=True)
class LaunchTarget:
    """All a launch needs of the client, for one DevServer; ``DevServerClient.launch`` builds it.

    Handing these over instead of the client keeps this module from importing ``client``, which imports it:
    the two formed the SDK's one import circle, and a launch reached into the client's private parts.

    Attributes:
        name: the DevServer.
        namespace: its namespace.
        read: reads the DevServer, status included (raises ``DevServerNotFoundError``).
        pods: lists its pods, as the API returns them.
        open_session: opens an exec session in one of its pods.
        record_activity: records activity on it (the launch's heartbeat calls it).
        checkpoints: the checkpoints on rank 0 in a directory (``None``: the default one), as
            ``DevServerClient.checkpoints`` lists them.
    """

    name: str
    namespace: str
    read: Callable[[], DevServer]
    pods: Callable[[], builtins.list[dict[str, Any]]]
    open_session: OpenSession
    record_activity: Callable[[], object]
    checkpoints: Callable[[str | None], CheckpointListing]

class LaunchLine(tuple[int, str, str]):
    """``(rank, stream, line)``: the node rank (pod index), ``"stdout"`` or ``"stderr"``, the line without
    its newline; it unpacks as those three. A line a worker printed also says which process printed it:
    ``global_rank`` (torchrun's ``RANK``), ``local_rank`` and ``local_world_size`` (processes on its node);
    they are None for torchrun's own lines. ``label`` is how front ends prefix it."""

    global_rank: int | None
    local_rank: int | None
    local_world_size: int | None

    def __new__(cls, rank: int, stream: str, line: str, *, global_rank: int | None = None,
                local_rank: int | None = None, local_world_size: int | None = None) -> LaunchLine:
        self = super().__new__(cls, (rank, stream, line))
        self.global_rank, self.local_rank, self.local_world_size = global_rank, local_rank, local_world_size
        return self

    @property
    def label(self) -> str:
        """``[rank 3]`` (the global rank, what the script calls its rank), ``[rank 3 node 1]`` when a node runs
        several processes, ``[node 1]`` for torchrun's own lines on node 1."""
        if self.global_rank is None:
            return f"[node {self[0]}]"
        if (self.local_world_size or 1) > 1:
            return f"[rank {self.global_rank} node {self[0]}]"
        return f"[rank {self.global_rank}]"


LaunchEvent = LaunchLine
OutputCallback = Callable[[int, str, str], object]

_STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
# torchrun prints this (glog style) when a worker fails: "E0101 12:00:00.000 123 .../api.py:900] failed
# (exitcode: 3) local_rank: 0 (pid: 123) of binary: /usr/bin/python3". What follows is its own traceback
# and report; the script's last words come before.
_WORKER_FAILED = re.compile(r"failed \(exitcode: (-?\d+)\) local_rank: (\d+)")
_REPORT_RANK = re.compile(r"^\s*rank\s*:\s*(\d+) \(local_rank: (\d+)\)")
_REPORT_EXITCODE = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)")
_TORCH_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ")
"""torch's own log lines (glog style), which are not the script's last words."""

# Runs in the pod under /bin/sh: the marker goes into the environment the interpreter starts with (what
# /proc/<pid>/environ shows), then the first python3/python on PATH runs the bootstrap.
# Each worker runs under this labeller (torchrun --no-python), so that its output reaches the rank's stream
# one whole line per write(2), prefixed with who printed it. Workers of a node share one pipe: written as
# they came (print() writes the text and the newline separately), two processes' lines were joined.
_LABEL = re.compile("^\x1edevservers-rank (-?\\d+) (-?\\d+) (\\d+)\x1e")
_LABELLER = """\
import os, signal, subprocess, sys, threading
env = os.environ
label = ("\\x1edevservers-rank %s %s %s\\x1e" % (env.get("RANK", "-1"), env.get("LOCAL_RANK", "-1"),
                                                 env.get("LOCAL_WORLD_SIZE", "1"))).encode()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda number, frame: child.send_signal(number))
def pump(pipe, fd):
    for line in iter(pipe.readline, b""):
        if not line.endswith(b"\\n"):
            line += b"\\n"
        while line:  # at most PIPE_BUF bytes per write: a pipe never interleaves those
            piece, line = line[:4000], line[4000:]
            if line:
                piece += b"\\n"
            os.write(fd, label + piece)
threads = [threading.Thread(target=pump, args=(pipe, fd)) for pipe, fd in ((child.stdout, 1), (child.stderr, 2))]
for thread in threads:
    thread.start()
code = child.wait()
for thread in threads:
    thread.join()
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""

_WRAPPER = (
    f'{MARKER_ENV}=$1; export {MARKER_ENV}; boot=$2; shift 2; for py in python3 python; do '
    'if command -v "$py" >/dev/null 2>&1; then exec "$py" -c "$boot" "$@"; fi; done; '
    'echo "devservers launch: neither python3 nor python is on PATH ($PATH)" >&2; exit 127'
)
# The bootstrap: own session (the runtime's process group is not ours to share), working directory,
# environment, then torchrun in this same interpreter (no second start-up).
_BOOTSTRAP = """\
import importlib.util, json, os, runpy, sys
config = json.loads(sys.argv[1])
if importlib.util.find_spec("torch") is None:
    sys.stderr.write("devservers launch: %s cannot import torch; install PyTorch in the image, or put a "
                     "Python that has it first on PATH\\n" % sys.executable)
    sys.exit(127)
try:
    os.setsid()
except OSError:
    pass
workdir = config["workdir"]
if workdir:
    try:
        os.chdir(os.path.expanduser(workdir))
    except OSError as exc:
        sys.stderr.write("devservers launch: cannot change to directory %r: %s\\n" % (workdir, exc.strerror))
        sys.exit(2)
os.environ.update(config["env"])
sys.stdout.reconfigure(line_buffering=True)
args = list(config["args"])
options = []
while args[:1] == ["--nproc-per-node"]:
    options, args = options + args[:2], args[2:]
if args[:1] == ["--no-python"]:
    program = args[1:]
else:  # a script or -m module: what torchrun itself would run
    program = [sys.executable, "-u", *args]
sys.argv = ["torchrun", *options, "--no-python", sys.executable, "-c", config["labeller"], *program]
runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)
"""
# The stopper: every live process whose environment holds the launch's marker gets SIGTERM, then
# SIGKILL after the grace period. Prints how many it signalled.
_STOPPER = """\
import os, signal, sys, time
marker = sys.argv[1].encode()
grace = float(sys.argv[2])
me = os.getpid()
def marked():
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                environ = f.read().split(b"\\0")
            with open("/proc/%s/stat" % entry, "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in environ and state not in (b"Z", b"X"):
            found.append(int(entry))
    return found
def send(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
pids = marked()
signalled = len(pids)
send(pids, signal.SIGTERM)
deadline = time.monotonic() + grace
while pids and time.monotonic() < deadline:
    time.sleep(0.05)
    pids = marked()
send(pids, signal.SIGKILL)
print("stopped %d process(es), %d killed" % (signalled, len(pids)))
"""
_STOPPER_WRAPPER = (
    'code=$1; shift; for py in python3 python; do '
    'if command -v "$py" >/dev/null 2>&1; then exec "$py" -c "$code" "$@"; fi; done; '
    'echo "devservers launch: no python3 or python to stop the launch with" >&2; exit 127'
)


# -- validation (pure) -----------------------------------------------------------------------------------

def torchrun_args(command: str | Sequence[str], *,
                  nprocs_per_node: int | Literal["auto", "cpu", "gpu"] | None = None) -> builtins.list[str]:
    """The arguments given to ``python -m torch.distributed.run`` on every rank.

    The rest of torchrun's options come from the ``PET_*`` environment of the pods.

    Args:
        command: the script and its arguments, as a list or a shell-like string. Forms:
            ``train.py --epochs 3`` runs the script with torchrun's Python; ``python train.py ...`` and
            ``python -u train.py`` likewise (the interpreter named is replaced by the one with torch);
            ``-m pkg.mod ...`` or ``python -m pkg.mod ...`` run a module; anything else (``bash run.sh``,
            ``./train``, ``python -O x.py``) runs as is in every worker (torchrun ``--no-python``).
        nprocs_per_node: processes per pod, overriding the DevServer's ``nprocsPerNode``.

    Returns:
        The argument list, e.g. ``['--nproc-per-node', '4', 'train.py', '--epochs', '3']``.

    Raises:
        InvalidSpecError: an empty command, an unparsable string, an option where the script should be,
            or a bad ``nprocs_per_node``.
    """
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise InvalidSpecError(f"The launch command {command!r} cannot be parsed: {exc}.",
                                   field="command") from exc
    else:
        argv = [str(part) for part in command]
    if not argv:
        raise InvalidSpecError("The launch command is empty: give the script and its arguments, e.g. "
                               "'train.py --epochs 3'.", field="command")
    options: builtins.list[str] = []
    if nprocs_per_node is not None:
        if isinstance(nprocs_per_node, str) and nprocs_per_node in ("auto", "cpu", "gpu"):
            options = ["--nproc-per-node", nprocs_per_node]
        elif isinstance(nprocs_per_node, int) and not isinstance(nprocs_per_node, bool) and nprocs_per_node >= 1:
            options = ["--nproc-per-node", str(nprocs_per_node)]
        else:
            raise InvalidSpecError(f"nprocs_per_node must be a whole number of processes >= 1 (or 'auto', "
                                   f"'gpu', 'cpu'), got {nprocs_per_node!r}.", field="nprocs_per_node")
    head = argv[0]
    if _PYTHON.match(head.rsplit("/", 1)[-1]) and len(argv) > 1:
        rest = argv[1:]
        if rest[0] == "-u":  # unbuffered already: PYTHONUNBUFFERED=1
            rest = rest[1:]
        if rest and (rest[0] == "-m" or not rest[0].startswith("-")):
            return [*options, *rest]
        return [*options, "--no-python", *argv]
    if head == "-m":
        if len(argv) < 2:
            raise InvalidSpecError("'-m' needs a module name, e.g. '-m mypackage.train'.", field="command")
        return [*options, *argv]
    if head.startswith("-"):
        raise InvalidSpecError(f"The launch command starts with the option {head!r}; give the script and its "
                               f"arguments (launch passes torchrun's options itself, e.g. "
                               f"nprocs_per_node=...).", field="command")
    if head.endswith(".py"):
        return [*options, *argv]
    return [*options, "--no-python", *argv]


def validate_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """Check the extra variables of a launch.

    Args:
        env: names and values to add to every process's environment.

    Returns:
        A copy, with values as given.

    Raises:
        InvalidSpecError: a name that is not a valid variable name; one the distributed contract owns
            (``PET_*``, ``MASTER_ADDR``, ``NODE_RANK``, ``RANK``, ``WORLD_SIZE``, ``DEVSERVER_*``...);
            one that loads code into every process (every ``LD_*``, ``PYTHONPATH``, ``PYTHONSTARTUP``,
            ``NCCL_*_PLUGIN``...: ``models.env_name_problem``); a value that is not a string or holds a NUL.
    """
    checked: dict[str, str] = {}
    for name, value in (env or {}).items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise InvalidSpecError(f"Invalid environment variable name {name!r} for launch: use letters, digits "
                                   f"and '_', not starting with a digit.", field="env")
        problem = env_name_problem(name)
        if problem == "contract":
            raise InvalidSpecError(
                f"launch cannot set {name}: the DevServer's distributed environment and torchrun set it "
                f"(PET_*, MASTER_*, NODE_RANK, NNODES, RANK, WORLD_SIZE, DEVSERVER_*...). Change the "
                f"DevServer (world size, nprocs per node), or choose the processes per pod of this launch "
                f"instead.", field="env", next_step=NextStep("launch", "NAME", {"nprocs-per-node": "1"}),
                lead="with")
        if problem == "loader":
            raise InvalidSpecError(
                f"launch refuses to set {name}: it would load code into every process before the script "
                f"(LD_*, PYTHONPATH, PYTHONSTARTUP, NCCL_*_PLUGIN...). Install what you need in the image, or "
                f"add to sys.path from the script itself.", field="env")
        if not isinstance(value, str) or "\0" in value:
            raise InvalidSpecError(f"The value of {name} must be a string without NUL characters, got "
                                   f"{value!r}.", field="env")
        checked[name] = value
    return checked


def ranks_not_ready(pods: Sequence[Mapping[str, Any]], world_size: int) -> tuple[dict[int, str], builtins.list[str]]:
    """Match the pods of a distributed DevServer to its ranks (``views.pod_rank``, ``views.pod_ready``).

    Args:
        pods: the DevServer's pods (as the API returns them).
        world_size: how many ranks it has.

    Returns:
        ``(ready, problems)``: the pod name of each ready rank, and one phrase per rank that is not, e.g.
        ``rank 1 (pod x-1 is Pending)`` or ``rank 2 (no pod)``.
    """
    ready: dict[int, str] = {}
    seen: dict[int, Mapping[str, Any]] = {}
    for pod in pods:
        rank = pod_rank(pod)
        if rank is None or not 0 <= rank < world_size:
            continue
        if pod_ready(pod):
            ready.setdefault(rank, str(pod["metadata"]["name"]))
        else:
            seen.setdefault(rank, pod)
    problems = []
    for rank in range(world_size):
        if rank in ready:
            continue
        found = seen.get(rank)
        if found is None:
            problems.append(f"rank {rank} (no pod)")
            continue
        name = found["metadata"]["name"]
        if (found.get("metadata") or {}).get("deletionTimestamp"):
            problems.append(f"rank {rank} (pod {name} is terminating)")
        else:
            phase = (found.get("status") or {}).get("phase") or "Unknown"
            problems.append(f"rank {rank} (pod {name} is {phase}{', not Ready' if phase == 'Running' else ''})")
    return ready, problems


def _require_launchable(server: DevServer) -> int:
    name = server.name
    distributed = server.spec.distributed
    if server.spec.mode != "distributed" or distributed is None:
        raise NotDistributedError(
            f"DevServer '{name}' is standalone; launch runs torchrun across the pods of a distributed "
            f"DevServer. Run commands on a standalone one with shell (devctl shell {name} -- python train.py), or "
            f"create a distributed one",
            next_step=NextStep("create", "NAME", {"flavor": server.spec.flavor, "distributed": True}),
            lead="with", kind="DevServer", name=name, namespace=server.namespace)
    phase = server.status.phase or "not reported yet"
    if phase != "Running":
        if phase == "Stopped":
            step, lead = NextStep("start", name), "Start it with"
        elif phase == "Failed":
            step, lead = NextStep("describe", name), "See why with"
        else:
            step, lead = NextStep("wait", name), "Wait for it with"
        raise DevServerNotReadyError(f"DevServer '{name}' is {phase}, not Running, so nothing can be launched on "
                                     f"it.", next_step=step, lead=lead, kind="DevServer", name=name,
                                     namespace=server.namespace)
    return distributed.world_size


def _torchrun_report(lines: Sequence[str]) -> tuple[int | None, str, int]:
    """From a failed rank's output: the root-cause worker's exit code and rank in torchrun's report, and
    where torchrun's own failure output starts (what comes before is the script's)."""
    cut = next((index for index, line in enumerate(lines) if _WORKER_FAILED.search(line)), len(lines))
    code: int | None = None
    rank = ""
    match = _WORKER_FAILED.search(lines[cut]) if cut < len(lines) else None
    if match:
        code = int(match.group(1))
    root = next((index for index, line in enumerate(lines) if line.startswith("Root Cause")), None)
    if root is not None:
        for line in lines[root:]:
            ranked = _REPORT_RANK.match(line)
            if ranked and not rank:
                rank = f"worker rank {ranked.group(1)} (local rank {ranked.group(2)})"
            exited = _REPORT_EXITCODE.match(line)
            if exited:
                code = int(exited.group(1))
                break
    return code, rank, cut


# -- the handle ------------------------------------------------------------------------------------------

@dataclass
class _Rank:
    rank: int
    pod: str
    argv: builtins.list[str]
    session: ExecSession | None = None
    returncode: int | None = None
    finished: bool = False
    stopped: bool = False
    lost: str | None = None
    start_error: BaseException | None = None
    first_output: float | None = None
    tail: collections.deque[str] | None = None


class LaunchHandle:
    """A launch in progress on every rank of a distributed DevServer (returned by ``launch``).

    Iterate it (or ``events()``) for ``(rank, stream, line)`` as lines arrive; ``wait()`` for the exit
    statuses; ``cancel()`` to stop every rank. Use it as a context manager: leaving the block stops
    whatever still runs. All methods are thread-safe.

    Attributes:
        name: the DevServer.
        namespace: its namespace.
        launch_id: the id in every process's ``DEVSERVERS_LAUNCH`` variable (``<launch_id>-<rank>``).
        run_group: the experiment-tracking run group of every process (``DEVSERVERS_RUN_GROUP`` and
            ``WANDB_RUN_GROUP``, see ``tracking``): ``<name>-<8 hex digits>``.
        pods: the pod of each rank.
        args: the arguments given to ``python -m torch.distributed.run`` on every rank.
        started_at: ``time.monotonic()`` when the launch began.
    """

    def __init__(self, target: LaunchTarget, pods: Mapping[int, str], args: Sequence[str], *,
                 env: Mapping[str, str], workdir: str | None, timeout: float | None,
                 on_output: OutputCallback | None) -> None:
        self.name = target.name
        self.namespace = target.namespace
        self.resumed_from: CheckpointInfo | None = None  # the checkpoint a resume=True launch continues from
        self.launch_id = secrets.token_hex(6)
        self.run_group: str | None = None
        self.args = list(args)
        self.pods = dict(sorted(pods.items()))
        self.started_at = time.monotonic()
        self._open_session = target.open_session
        self._on_output = on_output
        self._deadline = None if timeout is None else self.started_at + timeout
        self._timeout = timeout
        self._cond = threading.Condition()
        self._lines: builtins.list[LaunchEvent] = []
        self._dropped = 0
        self._stop = threading.Event()
        self._stop_reason: Literal["failure", "cancel", "timeout", "callback"] | None = None
        self._failure: LaunchFailedError | None = None
        self._callback_error: BaseException | None = None
        self._ranks: dict[int, _Rank] = {}
        for rank, pod in self.pods.items():
            config = {"workdir": workdir or "", "args": self.args, "env": dict(env), "labeller": _LABELLER}
            argv = ["/bin/sh", "-c", _WRAPPER, "devservers-launch", self._marker(rank), _BOOTSTRAP,
                    json.dumps(config)]
            self._ranks[rank] = _Rank(rank, pod, argv, tail=collections.deque(maxlen=TAIL_LINES * 5))
        self._heartbeat = ActivityHeartbeat(target.record_activity)
        self._threads: builtins.list[threading.Thread] = []
        self._started = threading.Semaphore(0)
        self._all_done = False

    # -- starting ------------------------------------------------------------------------------------

    def _marker(self, rank: int) -> str:
        return f"{self.launch_id}-{rank}"

    def _start(self) -> None:
        self._heartbeat.__enter__()
        for info in self._ranks.values():
            thread = threading.Thread(target=self._run_rank, args=(info,), daemon=True,
                                      name=f"devservers-launch-{self.name}-{info.rank}")
            self._threads.append(thread)
            thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        try:
            for _ in self._ranks:
                if not self._started.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    break
        except BaseException:
            self.cancel()
            raise
        failed = [info for info in self._ranks.values() if info.start_error is not None]
        if failed:
            self.cancel()
            error = failed[0].start_error
            assert error is not None
            if isinstance(error, DevServerError):
                raise error
            raise DevServerError(f"Could not start rank {failed[0].rank} of the launch on DevServer "
                                 f"'{self.name}' (pod {failed[0].pod}): {error}", kind="DevServer",
                                 name=self.name, namespace=self.namespace) from error

    def _run_rank(self, info: _Rank) -> None:
        try:
            info.session = self._open_session(info.pod, info.argv)
        except BaseException as exc:  # reported by _start, which stops the others
            info.start_error = exc
            info.finished = True
            info.returncode = -1
            self._started.release()
            self._rank_finished(info)
            return
        self._started.release()
        session = info.session
        decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")}
        partial = {"stdout": "", "stderr": ""}
        stopper: threading.Thread | None = None
        give_up_at: float | None = None
        try:
            while not session.closed:
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    self._request_stop("timeout")
                if self._stop.is_set() and stopper is None:
                    info.stopped = True
                    stopper = threading.Thread(target=self._stop_rank, args=(info,), daemon=True,
                                               name=f"devservers-launch-stop-{self.name}-{info.rank}")
                    stopper.start()
                    give_up_at = time.monotonic() + STOP_GRACE + 10.0
                if stopper is not None and not stopper.is_alive() and give_up_at is not None:
                    give_up_at = min(give_up_at, time.monotonic() + 1.0)
                if give_up_at is not None and time.monotonic() >= give_up_at:
                    break
                messages, _ = session.pump(_PUMP_INTERVAL)
                for channel, data in messages:
                    stream = _STREAM_NAMES.get(channel)
                    if stream is None or not data:
                        continue
                    text = partial[stream] + decoders[stream].decode(data)
                    *complete, rest = text.split("\n")
                    while len(rest) > _LINE_LIMIT:
                        complete.append(rest[:_LINE_LIMIT])
                        rest = rest[_LINE_LIMIT:]
                    partial[stream] = rest
                    for line in complete:
                        self._emit(info, stream, line.removesuffix("\r"))
        except (DevServerError, OSError) as exc:
            info.lost = str(exc)
        finally:
            session.close()
        for stream in ("stdout", "stderr"):
            rest = partial[stream] + decoders[stream].decode(b"", final=True)
            if rest:
                self._emit(info, stream, rest.removesuffix("\r"))
        if stopper is not None:
            stopper.join(timeout=STOP_GRACE + 10.0)
        code = session.exit_code
        if code is None and info.lost is None and not info.stopped:
            failure = session.failure
            if failure is not None:
                code = 127 if "not found" in failure else 126
                self._emit(info, "stderr", failure)
            else:
                info.lost = (f"the connection to pod {info.pod} ended before the command reported an exit "
                             f"status")
        info.returncode = code if code is not None else (-15 if info.stopped else -1)
        info.finished = True
        self._rank_finished(info)

    def _emit(self, info: _Rank, stream: str, line: str) -> None:
        labelled = _LABEL.match(line)
        if labelled is None:
            event = LaunchLine(info.rank, stream, line)
        else:
            line = line[labelled.end():]
            global_rank, local_rank, local_world_size = (int(part) for part in labelled.groups())
            event = LaunchLine(info.rank, stream, line, global_rank=global_rank if global_rank >= 0 else None,
                               local_rank=local_rank, local_world_size=local_world_size)
        if info.first_output is None:
            info.first_output = time.monotonic()
        assert info.tail is not None
        info.tail.append(line)
        with self._cond:
            self._lines.append(event)
            if len(self._lines) > RETAINED_LINES + RETAINED_LINES // 2:
                excess = len(self._lines) - RETAINED_LINES
                del self._lines[:excess]
                self._dropped += excess
            self._cond.notify_all()
        if self._on_output is not None and self._callback_error is None:
            try:
                self._on_output(*event)
            except BaseException as exc:
                self._callback_error = exc
                self._request_stop("callback")

    def _request_stop(self, reason: Literal["failure", "cancel", "timeout", "callback"]) -> None:
        with self._cond:
            if self._stop_reason is None:
                self._stop_reason = reason
            self._stop.set()
            self._cond.notify_all()

    def _stop_rank(self, info: _Rank) -> None:
        """Stop a rank's processes in its pod: SIGTERM, then SIGKILL after ``STOP_GRACE`` (see the module doc)."""
        argv = ["/bin/sh", "-c", _STOPPER_WRAPPER, "devservers-launch-stop", _STOPPER,
                f"{MARKER_ENV}={self._marker(info.rank)}", str(STOP_GRACE)]
        with contextlib.suppress(DevServerError, OSError):
            session = self._open_session(info.pod, argv, timeout=10.0)
            deadline = time.monotonic() + STOP_GRACE + 10.0
            try:
                while not session.closed and time.monotonic() < deadline:
                    session.pump(max(0.0, deadline - time.monotonic()))
            finally:
                session.close()

    def _rank_finished(self, info: _Rank) -> None:
        failure: LaunchFailedError | None = None
        with self._cond:
            if (info.returncode != 0 or info.lost) and not info.stopped and self._failure is None \
                    and self._stop_reason in (None, "failure"):
                failure = self._failure_error(info)
                self._failure = failure
            done = all(other.finished for other in self._ranks.values())
        if failure is not None:
            self._request_stop("failure")
        if done:
            self._heartbeat.__exit__(None, None, None)
            with self._cond:
                if self._stop_reason == "timeout" and self._failure is None:
                    self._failure = self._timeout_error()
                self._all_done = True
                self._cond.notify_all()

    def _failure_error(self, info: _Rank) -> LaunchFailedError:
        lines = list(info.tail or ())
        worker_code, worker_rank, cut = _torchrun_report(lines)
        said = [line for line in lines[:cut] if line.strip() and not _TORCH_LOG.match(line)][-5:]
        if info.lost:
            what = f"Rank {info.rank} of the launch on DevServer '{self.name}' failed: {info.lost}"
        else:
            what = f"Rank {info.rank} of the launch on DevServer '{self.name}' (pod {info.pod}) exited with " \
                   f"code {info.returncode}"
        if worker_code is not None:
            what += f"; {worker_rank or 'a worker'} exited with code {worker_code}"
        others = [rank for rank in self._ranks if rank != info.rank]
        message = what + (f"; ranks {', '.join(map(str, others))} were stopped." if len(others) > 1 else
                          f"; rank {others[0]} was stopped." if others else ".")
        if said:
            message += f" Last output of rank {info.rank}:\n" + "\n".join(f"    {line}" for line in said)
        return LaunchFailedError(message, rank=info.rank, returncode=info.returncode, worker_exitcode=worker_code,
                                 tail=lines[:cut][-TAIL_LINES:], returncodes=self.returncodes, kind="DevServer",
                                 name=self.name, namespace=self.namespace)

    def _timeout_error(self) -> LaunchTimeoutError:
        return LaunchTimeoutError(
            f"The launch on DevServer '{self.name}' did not finish within {self._timeout:g}s; every rank was "
            f"stopped.", next_step=NextStep("launch", self.name, {"timeout": f"{math.ceil(2 * (self._timeout or 0)) or 1}s"}),
            lead="Run it again with a larger timeout (or none), e.g.", returncodes=self.returncodes, kind="DevServer",
            name=self.name, namespace=self.namespace)

    # -- the public side -----------------------------------------------------------------------------

    @property
    def ranks(self) -> builtins.list[int]:
        """The node ranks, in order."""
        return list(self._ranks)

    @property
    def returncodes(self) -> dict[int, int | None]:
        """Each rank's exit status: ``None`` while it runs; ``-15`` if stopped without reporting one, ``-1``
        if its connection was lost."""
        return {rank: info.returncode if info.finished else None for rank, info in self._ranks.items()}

    @property
    def done(self) -> bool:
        """Whether every rank has finished (and the handle's threads are done with them)."""
        return self._all_done

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel()`` (or an interrupt) stopped the launch."""
        return self._stop_reason == "cancel"

    @property
    def failed_rank(self) -> int | None:
        """The rank whose failure stopped the launch, if any."""
        return self._failure.rank if self._failure is not None else None

    @property
    def first_output(self) -> dict[int, float | None]:
        """Seconds from the start of the launch to each rank's first output line (``None``: none yet)."""
        return {rank: None if info.first_output is None else info.first_output - self.started_at
                for rank, info in self._ranks.items()}

    def wait(self, timeout: float | None = None) -> dict[int, int]:
        """Wait until every rank has finished.

        Args:
            timeout: seconds to wait; the launch keeps running when they pass (``None``: no limit).

        Returns:
            The exit status of each rank, e.g. ``{0: 0, 1: 0}``; after ``cancel()``, stopped ranks have
            the status they reported, or ``-15``.

        Raises:
            LaunchFailedError: a rank failed (the others were stopped); names the rank, its exit code and
                the tail of its output.
            LaunchTimeoutError: the launch's own ``timeout`` passed and every rank was stopped.
            WaitTimeoutError: this call's ``timeout`` passed; the launch is still running.
            KeyboardInterrupt: after stopping every rank.
            Exception: whatever ``on_output`` raised (which stopped the launch).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self._cond:
                while not self._all_done:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        running = [rank for rank, code in self.returncodes.items() if code is None]
                        raise WaitTimeoutError(
                            f"The launch on DevServer '{self.name}' is still running after {timeout:g}s (ranks "
                            f"{', '.join(map(str, running))}); it goes on: wait again, or cancel() it.",
                            kind="DevServer", name=self.name, namespace=self.namespace)
                    self._cond.wait(_PUMP_INTERVAL if remaining is None else min(_PUMP_INTERVAL, remaining))
        except KeyboardInterrupt:
            self.cancel()
            raise
        if self._callback_error is not None:
            raise self._callback_error
        if self._failure is not None:
            self._failure.returncodes = {rank: code for rank, code in self.returncodes.items()}
            raise self._failure
        return {rank: int(code) if code is not None else -1 for rank, code in self.returncodes.items()}

    def events(self) -> Iterator[LaunchEvent]:
        """``(rank, stream, line)`` for every output line, from the first, as they arrive; ends when every
        rank has finished (then call ``wait()`` for the outcome). Each call is an independent reader.

        Raises:
            KeyboardInterrupt: after stopping every rank.
        """
        position = 0
        try:
            while True:
                with self._cond:
                    while position >= self._dropped + len(self._lines) and not self._all_done:
                        self._cond.wait(_PUMP_INTERVAL)
                    batch = self._lines[max(0, position - self._dropped):]
                    position = self._dropped + len(self._lines)
                    finished = self._all_done
                yield from batch
                if finished and not batch:
                    return
        except KeyboardInterrupt:
            self.cancel()
            raise

    def __iter__(self) -> Iterator[LaunchEvent]:
        return self.events()

    def logs(self, *, rank: int | None = None, stream: Literal["stdout", "stderr"] | None = None) -> str:
        """The output so far (up to ``RETAINED_LINES`` lines over all ranks), one line per line.

        Args:
            rank: only this node rank's (pod's) lines; ``None``: every rank, each line prefixed with its
                ``LaunchLine.label`` (``[rank N] ``, the global rank of the process that printed it).
            stream: only ``"stdout"`` or ``"stderr"``; ``None``: both, in arrival order.

        Returns:
            The lines joined with newlines (and ending with one, unless empty).
        """
        with self._cond:
            events = self._lines[-RETAINED_LINES:]
        if rank is not None and rank not in self._ranks:
            raise InvalidSpecError(f"The launch on DevServer '{self.name}' has no rank {rank} (ranks: "
                                   f"{', '.join(map(str, self._ranks))}).", field="rank")
        lines = [event[2] if rank is not None else f"{event.label} {event[2]}" for event in events
                 if (rank is None or event[0] == rank) and (stream is None or event[1] == stream)]
        return "".join(line + "\n" for line in lines)

    def cancel(self) -> None:
        """Stop every rank (SIGTERM, SIGKILL after ``STOP_GRACE`` s) and return once they are stopped.

        Does nothing to ranks that already finished; safe to call more than once and from any thread.
        """
        self._request_stop("cancel")
        end = time.monotonic() + STOP_GRACE + 15.0
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=max(0.0, end - time.monotonic()))

    def __enter__(self) -> LaunchHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._all_done:
            self.cancel()

    def __repr__(self) -> str:
        state = "done" if self._all_done else "stopping" if self._stop.is_set() else "running"
        return f"<LaunchHandle {self.name!r} ranks={len(self._ranks)} {state} returncodes={self.returncodes}>"


# -- a script written to every rank ----------------------------------------------------------------------

def script_name(source: str) -> str:
    """``cell-<hash>.py``: the same source, the same file, so rerunning rewrites it and different scripts
    launched at once cannot clash."""
    return f"cell-{hashlib.sha256(source.encode('utf-8')).hexdigest()[:12]}.py"


def _write_on_ranks(target: LaunchTarget, pods: Mapping[int, str], directory: str, filename: str,
                    data: bytes) -> builtins.list[str]:
    """Write ``data`` on every rank; returns the absolute path each rank reports, in rank order."""

    def one(pod: str) -> str:
        result = exec_.run(target.open_session, ["/bin/sh", "-c", _WRITE, "devservers-launch-write", directory,
                                                 filename], devserver=target.name, find_pod=lambda: pod,
                           record_activity=target.record_activity, stdin=data, check=True)
        return str(result.stdout).strip()

    ordered = [pod for _, pod in sorted(pods.items())]
    with ThreadPoolExecutor(max_workers=max(1, min(len(ordered), _MAX_CONCURRENT_WRITES)),
                            thread_name_prefix="devservers-launch-write") as pool:
        return list(pool.map(one, ordered))


def write_script(target: LaunchTarget, pods: Mapping[int, str], source: str) -> str:
    """Write a script's source into every rank's pod, at one absolute path; returns that path.

    On a real cluster the pods do not see this machine's files, so the source travels on each pod's exec
    stdin (``cat > file``: none of it goes into the command line, which travels in a URL of limited length),
    concurrently for all ranks. torchrun gets the same arguments on every rank, so the path must be the same
    everywhere. The first choice is the home (``~/.cache/devservers/launch``): a DevServer's home is its own
    volume at the same path in every pod, and the file stays there to look at after a failure. Each rank
    reports the path it wrote; if they differ (an image with per-pod homes) or the home is not writable, the
    script goes to ``SCRIPT_FALLBACK_DIRECTORY``, the same path by construction. It is written under a
    temporary name and renamed, so a rank never sees half of it.

    Args:
        target: the DevServer.
        pods: the pod of each rank.
        source: the script's text.

    Returns:
        The script's absolute path, the same on every rank.

    Raises:
        ExecError: the fallback directory could not be written either.
    """
    filename, data = script_name(source), source.encode("utf-8")
    try:
        paths = _write_on_ranks(target, pods, "", filename, data)
    except ExecError:  # e.g. a read-only home: the fallback below is the same path on every rank
        paths = []
    if paths and len(set(paths)) == 1:
        return paths[0]
    return _write_on_ranks(target, pods, SCRIPT_FALLBACK_DIRECTORY, filename, data)[0]


# -- the entry point -------------------------------------------------------------------------------------

def launch(target: LaunchTarget, command: str | Sequence[str], *,
           nprocs_per_node: int | Literal["auto", "cpu", "gpu"] | None = None,
           env: Mapping[str, str] | None = None, workdir: str | None = None, timeout: float | None = None,
           on_output: OutputCallback | None = None, resume: bool = False,
           checkpoint_dir: str | None = None, git_commit: str | None = None,
           source: str | None = None) -> LaunchHandle:
    """Run torchrun on every rank of a distributed DevServer (``DevServerClient.launch`` documents it).

    ``git_commit``: the commit of the code uploaded for this launch, given to every process as
    ``DEVSERVERS_GIT_COMMIT`` for the tracked run to record. ``source``: a script's text, written to every
    rank (``write_script``) once the ranks are known to be ready; ``command`` is then its arguments."""
    if source is not None:
        if not isinstance(source, str):
            raise InvalidSpecError(f"source must be the script's text (a str), got {type(source).__name__}.",
                                   field="source")
        if isinstance(command, str):
            try:
                command = shlex.split(command)
            except ValueError as exc:
                raise InvalidSpecError(f"The script's arguments {command!r} cannot be parsed: {exc}.",
                                       field="command") from exc
        script_args = [str(part) for part in command]
        # Checked with the file's name now, so a bad option fails before anything is written.
        torchrun_args([script_name(source), *script_args], nprocs_per_node=nprocs_per_node)
    args = torchrun_args(command, nprocs_per_node=nprocs_per_node) if source is None else []
    extra = validate_env(env)
    if workdir is not None and (not isinstance(workdir, str) or not workdir or "\0" in workdir):
        raise InvalidSpecError(f"workdir must be a non-empty path, got {workdir!r}.", field="workdir")
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise InvalidSpecError(f"timeout must be a number of seconds > 0, got {timeout!r}.", field="timeout")
    name = target.name
    server = target.read()
    world_size = _require_launchable(server)
    ready, problems = ranks_not_ready(target.pods(), world_size)
    if problems:
        raise DevServerNotReadyError(
            f"DevServer '{name}' is Running but not all of its {world_size} ranks are ready: "
            f"{'; '.join(problems)}.", next_step=NextStep("wait", name), lead="Wait for them with",
            kind="DevServer", name=name,
            namespace=target.namespace)
    if source is not None:
        args = torchrun_args([write_script(target, ready, source), *script_args], nprocs_per_node=nprocs_per_node)
    distributed = server.spec.distributed
    assert distributed is not None
    # One id for every process of this launch: W&B groups the runs by WANDB_RUN_GROUP, and
    # tracking.start_run tags the MLflow run with it, so a launch's run is found from the launch.
    run_group = f"{name}-{secrets.token_hex(4)}"
    launch_env = {"PYTHONUNBUFFERED": "1", "DEVSERVER_BACKEND": distributed.backend,
                  RUN_GROUP_ENV: run_group, "WANDB_RUN_GROUP": run_group, **extra}
    if git_commit:
        launch_env[GIT_COMMIT_ENV] = git_commit
    resumed_from = None
    if resume or checkpoint_dir is not None:
        from .checkpoint import CHECKPOINT_DIR_ENV, RESUME_FROM_ENV, RESUME_STEP_ENV

        listing = target.checkpoints(checkpoint_dir)
        launch_env[CHECKPOINT_DIR_ENV] = listing.directory
        if resume and listing.latest is not None:
            resumed_from = listing.latest
            launch_env[RESUME_FROM_ENV] = resumed_from.path
            launch_env[RESUME_STEP_ENV] = str(resumed_from.step)
    handle = LaunchHandle(target, ready, args, env=launch_env, workdir=workdir, timeout=timeout,
                          on_output=on_output)
    handle.resumed_from = resumed_from
    handle.run_group = run_group
    handle._start()
    return handle

"""``devctl launch`` end to end: real torchrun (torch 2.13, CPU, gloo) on a distributed DevServer the operator
runs, through Click's runner and as a real process (pipes, a terminal, Ctrl-C); then its pure parts."""

from __future__ import annotations

import io
import os
import queue
import re
import secrets
import signal
import subprocess
import threading
from collections.abc import Iterator

import click
import pexpect
import pytest

from devservers_sdk.client import DevServerClient
from devservers_sdk.errors import LaunchFailedError, LaunchTimeoutError
from tests.cli.devctl_support import DEVCTL, Devctl, devctl_env, make_devctl
from tests.launch.conftest import FLAVOR, DistributedServer, leftovers
from tests.platform_fixture import Platform

SUMMARY = re.compile(r"launch on 'ddp' (?P<outcome>[a-z ]+): (?P<ranks>.*); wall time \d+\.\ds")
ANSI = "\x1b["


@pytest.fixture(params=["runner", "process"])
def devctl(request: pytest.FixtureRequest, ddp: DistributedServer) -> Devctl:
    """devctl pointed at the module's distributed DevServer, in this process or as a subprocess."""
    run = make_devctl(request.param, ddp.kubeconfig)
    return lambda *args, **kwargs: run("-n", ddp.namespace, *args, **kwargs)


def summary_of(stderr: str) -> re.Match[str]:
    last = stderr.rstrip("\n").rsplit("\n", 1)[-1]
    match = SUMMARY.fullmatch(last)
    assert match, f"the last line of stderr is not the summary: {last!r}"
    return match


class Lines:
    """A subprocess's stdout and stderr read by threads, so a test can wait for a line with a time limit."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: queue.Queue[str] = queue.Queue()
        self.text = {"stdout": "", "stderr": ""}
        self.readers = [threading.Thread(target=self._read, args=(name, getattr(process, name)), daemon=True)
                        for name in ("stdout", "stderr")]
        for reader in self.readers:
            reader.start()

    def _read(self, name: str, stream: io.TextIOBase) -> None:
        for line in stream:
            self.text[name] += line
            self.seen.put(line)

    def wait_for(self, needle: str, count: int, timeout: float = 120) -> None:
        found = 0
        while found < count:
            try:
                line = self.seen.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"{needle!r} seen {found} of {count} times in {timeout}s:\n{self.text}")
            found += needle in line

    def finish(self) -> None:
        for reader in self.readers:
            reader.join(30)


# -- end to end ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_ddp_example_runs_as_one_group_of_four(devctl: Devctl) -> None:
    outcome = devctl("launch", "ddp", "--", "python", "train_ddp.py", "--epochs", "5")
    assert outcome.exit_code == 0, str(outcome)
    lines = outcome.stdout.splitlines()
    assert lines and all(re.match(r"\[rank [0-3] node [01]\] ", line) for line in lines), outcome.stdout

    # Four processes, two per pod, in one group: each line is labelled with the global rank of the process
    # that printed it (what the script calls its rank) and its node (issue 14: they were labelled by pod).
    joined = set(re.findall(r"^\[rank (\d) node (\d)\] rank (\d)/4 \(node (\d)", outcome.stdout, re.MULTILINE))
    assert joined == {("0", "0", "0", "0"), ("1", "0", "1", "0"), ("2", "1", "2", "1"), ("3", "1", "3", "1")}, \
        outcome.stdout
    assert "[rank 0 node 0] all_reduce sum = 6.0 (expected 6.0 = 0+1+2+3)" in lines
    assert "[rank 0 node 0] parameters identical on all 4 ranks" in lines
    losses = [float(loss) for loss in re.findall(r"^\[rank 0 node 0\] epoch \d+ loss ([\d.]+)$", outcome.stdout,
                                                 re.MULTILINE)]
    assert len(losses) == 5 and losses[-1] < losses[0], losses

    # stderr: the workers' and torchrun's own lines ([node N]), prefixed too, then the summary; no colour.
    summary = summary_of(outcome.stderr)
    assert summary["outcome"] == "succeeded" and summary["ranks"] == "rank 0 exit 0, rank 1 exit 0"
    assert all(line.startswith(("[rank ", "[node ")) for line in outcome.stderr.splitlines()[:-1]), outcome.stderr
    assert ANSI not in outcome.output


@pytest.mark.slow
def test_a_failing_rank_gives_its_exit_code_and_the_others_are_stopped(devctl: Devctl,
                                                                       ddp: DistributedServer) -> None:
    tag = f"tag-{secrets.token_hex(4)}"
    # Node 1's script exits 3 after a second; node 0's would sleep a minute unless it is stopped.
    outcome = devctl("launch", "ddp", "--nprocs-per-node", "1", "--", "fail_rank.py", tag)
    assert outcome.exit_code == 3, str(outcome)
    assert "[rank 1] rank 1 gives up: simulated failure" in outcome.stdout.splitlines()
    assert "rank 0 was not stopped" not in outcome.output
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, outcome.stderr
    assert errors[0].startswith("Error: Rank 1 of the launch on DevServer 'ddp' (pod ddp-1) exited with code")
    assert "exited with code 3" in errors[0] and errors[0].endswith("rank 0 was stopped.")
    summary = summary_of(outcome.stderr)
    assert summary["outcome"] == "failed"
    assert re.fullmatch(r"rank 0 exit -?\d+ \(stopped\), rank 1 exit \d+ \(failed first\)", summary["ranks"])
    for rank in (0, 1):
        assert leftovers(ddp, rank, tag) == []


@pytest.mark.slow
def test_the_timeout_stops_every_rank_and_exits_124(devctl: Devctl, ddp: DistributedServer) -> None:
    tag = f"tag-{secrets.token_hex(4)}"
    outcome = devctl("launch", "ddp", "--nprocs-per-node", "1", "--timeout", "8s", "--", "sleeper.py", tag)
    assert outcome.exit_code == 124, str(outcome)
    assert "Error: The launch on DevServer 'ddp' did not finish within 8s; every rank was stopped." \
        in outcome.stderr
    assert summary_of(outcome.stderr)["outcome"] == "timed out"
    assert "not stopped" not in outcome.stdout
    for rank in (0, 1):
        assert leftovers(ddp, rank, tag) == []


@pytest.mark.slow
def test_ctrl_c_stops_every_rank_and_exits_130(ddp: DistributedServer) -> None:
    tag = f"tag-{secrets.token_hex(4)}"
    process = subprocess.Popen([*DEVCTL, "-n", ddp.namespace, "launch", "ddp", "--nprocs-per-node", "1", "--",
                                "sleeper.py", tag], env=devctl_env(ddp.kubeconfig), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(process)
    try:
        lines.wait_for(" ready (tag ", 2)  # both workers run
        assert leftovers(ddp, 0, tag) and leftovers(ddp, 1, tag)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130, lines.text
    finally:
        if process.poll() is None:
            process.kill()
    lines.finish()
    assert "Interrupted: every rank of the launch on DevServer 'ddp' was stopped." in lines.text["stderr"]
    summary = summary_of(lines.text["stderr"])
    assert summary["outcome"] == "cancelled"
    assert re.fullmatch(r"rank 0 exit -?\d+ \(stopped\), rank 1 exit -?\d+ \(stopped\)", summary["ranks"])
    assert "Traceback" not in lines.text["stderr"].split("Interrupted:")[1]  # devctl's own: no traceback
    for rank in (0, 1):
        assert leftovers(ddp, rank, tag) == []


@pytest.mark.slow
@pytest.mark.parametrize("no_color", ["", "1"])
def test_prefixes_are_coloured_per_rank_on_a_terminal(ddp: DistributedServer, no_color: str) -> None:
    env = devctl_env(ddp.kubeconfig, TERM="xterm", NO_COLOR=no_color)
    child = pexpect.spawn(DEVCTL[0], [*DEVCTL[1:], "-n", ddp.namespace, "launch", "ddp", "--nprocs-per-node", "1",
                                      "--", "show_env.py"], env=env, encoding="utf-8", timeout=120)
    child.expect(pexpect.EOF)
    child.close()
    output = child.before or ""
    assert child.exitstatus == 0, output
    coloured = {rank: f"{click.style(f'[rank {rank}]', fg=colour)} cwd=" in output
                for rank, colour in ((0, "cyan"), (1, "green"))}
    if no_color:
        assert coloured == {0: False, 1: False} and ANSI not in output
        assert "[rank 0] cwd=" in output and "[rank 1] cwd=" in output
    else:
        assert coloured == {0: True, 1: True}, output
    assert "launch on 'ddp' succeeded: rank 0 exit 0, rank 1 exit 0; wall time" in output


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["runner", "process"])
def test_a_standalone_server_is_refused_in_one_line(mode: str, client: DevServerClient,
                                                    launch_platform: Platform) -> None:
    client.create("solo", flavor=FLAVOR, time_to_live="1h")
    devctl = make_devctl(mode, launch_platform.kubeconfig)
    outcome = devctl("-n", client.namespace, "launch", "solo", "--", "python", "train.py")
    assert outcome.exit_code == 1, str(outcome)
    assert outcome.stdout == ""
    assert outcome.stderr.count("\n") == 1, outcome.stderr
    assert outcome.stderr.startswith("Error: DevServer 'solo' is standalone; launch runs torchrun across the pods")
    assert "devctl shell solo -- python train.py" in outcome.stderr


@pytest.mark.slow
def test_a_missing_server_is_refused_in_one_line(launch_platform: Platform, namespace: str) -> None:
    outcome = make_devctl("runner", launch_platform.kubeconfig)("-n", namespace, "launch", "ghost", "--", "x.py")
    assert outcome.exit_code == 1 and outcome.stdout == ""
    assert outcome.stderr == f"Error: DevServer 'ghost' not found in namespace '{namespace}'. " \
                             f"List yours with: devctl list\n"


# -- usage and the pure parts ----------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "words"), [
    (["launch", "ddp"], "Give the command to run after --, e.g. devctl launch ddp -- python train.py"),
    (["launch", "ddp", "--nprocs-per-node", "0", "--", "x.py"], "expected a number of processes >= 1"),
    (["launch", "ddp", "--nprocs-per-node", "many", "--", "x.py"], "or auto, cpu or gpu; got 'many'"),
    (["launch", "ddp", "-e", "NOVALUE", "--", "x.py"], "expected KEY=VALUE"),
    (["launch", "ddp", "--timeout", "soon", "--", "x.py"], "--timeout"),
    (["launch", "ddp", "train.py", "--epochs", "3"], "No such option '--epochs'. Options of the command go after --"),
])
def test_usage_errors_exit_2_before_any_cluster_call(args: list[str], words: str) -> None:
    outcome = make_devctl("runner", os.devnull)(*args)
    assert outcome.exit_code == 2, str(outcome)
    assert words in outcome.stderr


def test_the_help_has_an_example() -> None:
    outcome = make_devctl("runner", None)("launch", "--help")
    assert outcome.exit_code == 0
    assert "devctl launch ddp --workdir . -- python train.py --epochs 3" in outcome.stdout
    assert "Usage: devctl launch [OPTIONS] NAME -- COMMAND..." in outcome.stdout
    listing = make_devctl("runner", None)("--help").stdout
    assert re.search(r"^  launch +Run torchrun on every rank of a distributed DevServer\.$", listing, re.MULTILINE)


def test_exit_status_is_the_failing_scripts_own() -> None:
    from devservers_cli.launch_command import exit_status

    def failed(returncode: int, worker: int | None = None) -> LaunchFailedError:
        return LaunchFailedError("failed", rank=1, returncode=returncode, worker_exitcode=worker)

    assert exit_status(failed(1, 3)) == 3  # torchrun exits 1 for any worker; the worker's code is the answer
    assert exit_status(failed(2)) == 2
    assert exit_status(failed(-9)) == 137 and exit_status(failed(1, -11)) == 139  # signals, as a shell says
    assert exit_status(failed(-1)) == 1  # the connection was lost: no status
    assert exit_status(failed(1, 0)) == 1 and exit_status(failed(300)) == 1
    assert exit_status(LaunchTimeoutError("late")) == 124


def test_the_summary_line() -> None:
    from devservers_cli.launch_command import summary

    assert summary("ddp", {0: 0, 1: 0}, outcome="succeeded", failed_rank=None, seconds=12.34) == \
        "launch on 'ddp' succeeded: rank 0 exit 0, rank 1 exit 0; wall time 12.3s"
    assert summary("ddp", {0: 0, 1: 1, 2: -15}, outcome="failed", failed_rank=1, seconds=3) == \
        "launch on 'ddp' failed: rank 0 exit 0, rank 1 exit 1 (failed first), rank 2 exit -15 (stopped); " \
        "wall time 3.0s"
    assert summary("ddp", {0: None, 1: -15}, outcome="cancelled", failed_rank=None, seconds=1) == \
        "launch on 'ddp' cancelled: rank 0 still running, rank 1 exit -15 (stopped); wall time 1.0s"


@pytest.fixture
def terminal() -> Iterator[io.TextIOWrapper]:
    leader, follower = os.openpty()
    try:
        with open(follower, "w") as stream:
            yield stream
    finally:
        os.close(leader)


def test_colour_only_on_a_terminal_without_no_color(terminal: io.TextIOWrapper) -> None:
    from devservers_cli.launch_command import prefix, use_colour

    assert use_colour(terminal, {"TERM": "xterm"})
    assert use_colour(terminal, {"NO_COLOR": ""})  # no-color.org: only a non-empty value counts
    assert not use_colour(terminal, {"NO_COLOR": "1"})
    assert not use_colour(terminal, {"TERM": "dumb"})
    assert not use_colour(io.StringIO(), {})
    from devservers_sdk.launch import LaunchLine

    def worker(rank: int, node: int = 0, per_node: int = 1) -> LaunchLine:
        return LaunchLine(node, "stdout", "x", global_rank=rank, local_rank=rank % per_node, local_world_size=per_node)

    assert prefix(worker(3, node=3), colour=False) == "[rank 3]"
    assert prefix(worker(3, node=1, per_node=2), colour=False) == "[rank 3 node 1]"  # the script's rank, and where
    assert prefix(LaunchLine(1, "stderr", "torchrun's own"), colour=False) == "[node 1]"
    assert prefix(worker(0), colour=True) == "\x1b[36m[rank 0]\x1b[0m"
    assert prefix(worker(10), colour=True) == "\x1b[36m[rank 10]\x1b[0m"  # ten colours, then they repeat
    assert len({prefix(worker(rank), colour=True) for rank in range(10)}) == 10

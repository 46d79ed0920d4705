"""``DevServerClient.launch`` end to end: real torchrun (torch 2.13, CPU, gloo) on both ranks of a distributed
DevServer made by the operator, through the emulator's exec; failure, cancellation, interrupts, timeouts."""

from __future__ import annotations

import _thread
import re
import secrets
import threading
import time
from datetime import datetime

import pytest

from devservers_sdk.client import DevServerClient
from devservers_sdk.contract import ACTIVITY_ANNOTATION
from devservers_sdk.errors import DevServerNotFoundError, DevServerNotReadyError, InvalidSpecError
from devservers_sdk.launch import (
    MARKER_ENV,
    LaunchFailedError,
    LaunchHandle,
    LaunchTimeoutError,
    NotDistributedError,
)
from tests.launch.conftest import FLAVOR, DistributedServer, Servers, leftovers

pytestmark = pytest.mark.slow


def marked(server: DistributedServer, rank: int, handle: LaunchHandle) -> str:
    """Processes of a rank that still carry the launch's marker variable (empty when none)."""
    script = ("import os\nfor p in os.listdir('/proc'):\n  try:\n    e = open(f'/proc/{p}/environ','rb').read()\n"
              "  except OSError:\n    continue\n"
              f"  if b'{MARKER_ENV}={handle.launch_id}-{rank}' in e.split(b'\\0'):\n"
              "    s = open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0]\n"
              "    print(p, s) if s not in 'ZX' else None\n")
    result = server.client.exec(server.name, ["python3", "-c", script], rank=rank, check=True)
    return str(result.stdout).strip()


def wait_until_ready(handle: LaunchHandle, workers: int) -> None:
    """Until every worker of sleeper.py has said it is ready (reading the events as a CLI would)."""
    deadline = time.monotonic() + 90
    for _ in handle:
        if handle.logs().count(" ready (tag ") >= workers:
            return
        assert time.monotonic() < deadline, handle.logs()
    pytest.fail(f"the launch ended before {workers} workers were ready:\n{handle.logs()}")


def test_ddp_example_runs_as_one_group_of_four_and_learns(ddp: DistributedServer) -> None:
    seen: list[tuple[int, str, str]] = []
    before = time.time()
    handle = ddp.client.launch(ddp.name, ["python", "train_ddp.py", "--epochs", "5"],
                               on_output=lambda *event: seen.append(event))
    with handle:
        events = list(handle)
        codes = handle.wait(timeout=120)
    output = handle.logs()
    assert codes == {0: 0, 1: 0}, output
    assert handle.returncodes == {0: 0, 1: 0} and handle.done and not handle.cancelled
    assert sorted(seen) == sorted(events)

    # Four processes, two per pod, joined one group: global ranks 0,1 on node 0 and 2,3 on node 1.
    joined = set()
    for rank, _, line in events:
        match = re.match(r"rank (\d)/4 \(node (\d)", line)
        if match:
            joined.add((rank, int(match.group(1)), int(match.group(2))))
    assert joined == {(0, 0, 0), (0, 1, 0), (1, 2, 1), (1, 3, 1)}, output

    rank0 = handle.logs(rank=0)
    assert "all_reduce sum = 6.0 (expected 6.0 = 0+1+2+3)" in rank0
    assert "world_size=4" in rank0 and "parameters identical on all 4 ranks" in rank0
    losses = [float(loss) for loss in re.findall(r"^epoch \d+ loss ([\d.]+)$", rank0, re.MULTILINE)]
    assert len(losses) == 5 and losses[0] > losses[-1], rank0
    assert "epoch" not in handle.logs(rank=1)  # only rank 0 prints the loss
    assert all(stream in ("stdout", "stderr") for _, stream, _ in events)

    # The launch counted as activity.
    annotations = ddp.client.get(ddp.name).metadata.annotations
    stamp = datetime.fromisoformat(annotations[ACTIVITY_ANNOTATION].replace("Z", "+00:00"))
    assert stamp.timestamp() >= int(before) - 1


def test_every_line_is_labelled_with_the_global_rank_of_its_process_and_never_joined(
        ddp: DistributedServer) -> None:
    """Issue 14: on a 2x2 server the lines were labelled by pod, and two processes' partial writes joined."""
    with ddp.client.launch(ddp.name, ["interleave.py"]) as handle:
        events = list(handle)
        assert handle.wait(timeout=120) == {0: 0, 1: 0}, handle.logs()
    lines = [event for event in events if event[2].startswith("LINE ")]
    assert len(lines) == 4 * 40, handle.logs()
    for event in lines:
        node, _, text = event
        assert re.fullmatch(r"LINE rank=(\d) i=(\d+) end", text), handle.logs()
        assert f"rank={event.global_rank} " in text and event.global_rank // 2 == node, text
        assert event.label == f"[rank {event.global_rank} node {node}]"
    assert not [event for event in events if event.global_rank is not None and not event[2]]  # no stray empties
    assert "[rank 3 node 1] LINE rank=3 i=39 end" in handle.logs()


def test_a_failing_rank_stops_the_others_and_is_named(ddp: DistributedServer) -> None:
    tag = f"tag-{secrets.token_hex(4)}"
    gave_up: list[float] = []
    handle = ddp.client.launch(ddp.name, ["fail_rank.py", tag], nprocs_per_node=1,
                               on_output=lambda rank, stream, line: "gives up" in line and gave_up.append(
                                   time.monotonic()))
    with pytest.raises(LaunchFailedError) as raised:
        handle.wait(timeout=45)  # rank 0 would sleep 60 s if it were not stopped
    stopped_after = time.monotonic() - gave_up[0]
    print(f"everything stopped {stopped_after:.2f}s after rank 1 gave up")
    assert stopped_after < 10  # "within a few seconds" (STOP_GRACE is 3 s; generous for loaded machines)
    error = raised.value
    assert error.rank == 1 and handle.failed_rank == 1
    assert error.worker_exitcode == 3
    message = str(error)
    assert "Rank 1 of the launch on DevServer 'ddp'" in message and "exited with code 3" in message
    assert "rank 1 gives up: simulated failure" in message and "rank 0 was stopped" in message
    assert any("simulated failure" in line for line in error.tail)
    finished = {rank: code for rank, code in handle.returncodes.items()}
    assert finished[1] not in (0, None) and finished[0] not in (0, None)
    assert "rank 0 was not stopped" not in handle.logs()
    assert leftovers(ddp, 0, tag) == [] and marked(ddp, 0, handle) == ""
    assert leftovers(ddp, 1, tag) == []


def test_cancel_stops_every_rank(ddp: DistributedServer) -> None:
    tag = f"tag-{secrets.token_hex(4)}"
    handle = ddp.client.launch(ddp.name, f"sleeper.py {tag}")
    wait_until_ready(handle, 4)
    assert leftovers(ddp, 0, tag) and leftovers(ddp, 1, tag)  # running, before the cancel
    started = time.monotonic()
    handle.cancel()
    assert time.monotonic() - started < 15
    codes = handle.wait(timeout=5)
    assert handle.cancelled and handle.done and set(codes) == {0, 1}
    assert all(code != 0 for code in codes.values()), codes
    for rank in (0, 1):
        assert leftovers(ddp, rank, tag) == [] and marked(ddp, rank, handle) == ""
    assert "not stopped" not in handle.logs()


@pytest.mark.parametrize("during", ["wait", "iteration"])
def test_an_interrupt_stops_every_rank(ddp: DistributedServer, during: str) -> None:
    tag = f"tag-{secrets.token_hex(4)}"
    handle = ddp.client.launch(ddp.name, ["sleeper.py", tag], nprocs_per_node=1)
    wait_until_ready(handle, 2)
    timer = threading.Timer(0.5, _thread.interrupt_main)  # what Ctrl-C or a kernel interrupt does
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        if during == "wait":
            handle.wait()
        else:
            for _ in handle:
                pass
    timer.join()
    assert handle.cancelled and handle.done
    for rank in (0, 1):
        assert leftovers(ddp, rank, tag) == []


def test_the_launch_timeout_stops_every_rank(ddp: DistributedServer) -> None:
    tag = f"tag-{secrets.token_hex(4)}"
    with ddp.client.launch(ddp.name, ["sleeper.py", tag], nprocs_per_node=1, timeout=8) as handle, \
            pytest.raises(LaunchTimeoutError) as raised:
        handle.wait(timeout=40)
    assert "did not finish within 8s" in str(raised.value)
    for rank in (0, 1):
        assert leftovers(ddp, rank, tag) == []


def test_leaving_the_with_block_stops_the_launch(ddp: DistributedServer) -> None:
    tag = f"tag-{secrets.token_hex(4)}"
    with ddp.client.launch(ddp.name, ["sleeper.py", tag], nprocs_per_node=1) as handle:
        for _, _, line in handle:
            if "ready" in line:
                break
    assert handle.done and handle.cancelled
    for rank in (0, 1):
        assert leftovers(ddp, rank, tag) == []


def test_env_workdir_and_the_backend_reach_every_worker(ddp: DistributedServer) -> None:
    home = str(ddp.client.exec(ddp.name, "echo $HOME", check=True).stdout).strip()
    handle = ddp.client.launch(ddp.name, [f"{home}/show_env.py"], nprocs_per_node=1, cwd="/tmp",
                               env={"MY_SETTING": "two words; $HOME 'quoted'"})
    assert handle.wait(timeout=60) == {0: 0, 1: 0}, handle.logs()
    for rank in (0, 1):
        lines = set(handle.logs(rank=rank).splitlines())
        assert {"cwd=/tmp", "MY_SETTING=two words; $HOME 'quoted'", "DEVSERVER_BACKEND=gloo",
                "PYTHONUNBUFFERED=1", f"GROUP_RANK={rank}", f"RANK={rank}", "WORLD_SIZE=2",
                "LOCAL_WORLD_SIZE=1"} <= lines, lines


def test_a_missing_script_fails_with_the_error_of_python(ddp: DistributedServer) -> None:
    handle = ddp.client.launch(ddp.name, "no_such_script.py", nprocs_per_node=1)
    with pytest.raises(LaunchFailedError) as raised:
        handle.wait(timeout=60)
    assert raised.value.rank in (0, 1)
    assert "no_such_script.py" in str(raised.value) and "No such file or directory" in str(raised.value)


@pytest.mark.parametrize("env", [
    {"PET_NNODES": "4"}, {"PET_MAX_RESTARTS": "3"}, {"MASTER_ADDR": "elsewhere"}, {"NODE_RANK": "1"},
    {"NNODES": "3"}, {"WORLD_SIZE": "8"}, {"RANK": "0"}, {"DEVSERVER_NAME": "x"}, {"LD_PRELOAD": "/tmp/x.so"},
    {"LD_AUDIT": "/tmp/x.so"}, {"PYTHONSTARTUP": "/tmp/x.py"}, {"1ABC": "x"}, {"A-B": "x"}, {"": "x"},
    {"OK": 3}, {"OK": "a\0b"},
])
def test_env_is_validated_before_anything_runs(ddp: DistributedServer, env: dict[str, object]) -> None:
    with pytest.raises(InvalidSpecError) as raised:
        ddp.client.launch(ddp.name, "train_ddp.py", env=env)  # type: ignore[arg-type]
    assert raised.value.field == "env"
    name = next(iter(env))
    assert repr(name) in str(raised.value) or name in str(raised.value)


def test_a_standalone_server_is_refused_with_what_to_use_instead(client: DevServerClient) -> None:
    client.create("solo", flavor=FLAVOR, time_to_live="1h")
    with pytest.raises(NotDistributedError) as raised:
        client.launch("solo", "train.py")
    message = str(raised.value)
    assert "DevServer 'solo' is standalone" in message and "devctl shell solo -- python train.py" in message
    assert "--distributed" in message


def test_a_stopped_server_is_refused_with_how_to_start_it(client: DevServerClient, servers: Servers) -> None:
    servers.stopped("group", mode="distributed", world_size=2)
    with pytest.raises(DevServerNotReadyError) as raised:
        client.launch("group", "train.py")
    assert "DevServer 'group' is Stopped, not Running" in str(raised.value)
    assert "devctl start group" in str(raised.value)


def test_a_missing_server_is_refused(client: DevServerClient) -> None:
    with pytest.raises(DevServerNotFoundError, match="devctl list"):
        client.launch("nothing-here", "train.py")

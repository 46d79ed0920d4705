"""The pure parts of launch: the torchrun command, env validation, rank readiness, torchrun's failure report."""

from __future__ import annotations

from typing import Any

import pytest

from devservers_sdk.errors import InvalidSpecError
from devservers_sdk.launch import _torchrun_report, ranks_not_ready, torchrun_args, validate_env


@pytest.mark.parametrize(("command", "expected"), [
    ("train.py --epochs 3", ["train.py", "--epochs", "3"]),
    (["train.py", "--name", "two words"], ["train.py", "--name", "two words"]),
    ("python train.py --epochs 3", ["train.py", "--epochs", "3"]),
    ("python3 -u train.py", ["train.py"]),
    ("/usr/bin/python3.11 train.py", ["train.py"]),
    ("python -m pkg.train --lr 0.1", ["-m", "pkg.train", "--lr", "0.1"]),
    ("-m pkg.train", ["-m", "pkg.train"]),
    ("bash run.sh", ["--no-python", "bash", "run.sh"]),
    ("./train", ["--no-python", "./train"]),
    ("python -O train.py", ["--no-python", "python", "-O", "train.py"]),
    ("python", ["--no-python", "python"]),
])
def test_the_command_becomes_torchrun_arguments(command: Any, expected: list[str]) -> None:
    assert torchrun_args(command) == expected


def test_nprocs_per_node_becomes_an_option() -> None:
    assert torchrun_args("train.py", nprocs_per_node=4) == ["--nproc-per-node", "4", "train.py"]
    assert torchrun_args("train.py", nprocs_per_node="gpu") == ["--nproc-per-node", "gpu", "train.py"]


@pytest.mark.parametrize(("command", "nprocs", "words"), [
    ("", None, "empty"), ([], None, "empty"), ("train.py 'open", None, "cannot be parsed"),
    ("--nproc-per-node 2 train.py", None, "option '--nproc-per-node'"), ("-m", None, "module name"),
    ("train.py", 0, "nprocs_per_node"), ("train.py", True, "nprocs_per_node"), ("train.py", "many", "nprocs_per_node"),
])
def test_bad_commands_are_refused_with_the_reason(command: Any, nprocs: Any, words: str) -> None:
    with pytest.raises(InvalidSpecError, match=words):
        torchrun_args(command, nprocs_per_node=nprocs)


def test_ordinary_variables_pass() -> None:
    # LD_LIBRARY_PATH is refused like every LD_* (tests/security/test_env_injection.py).
    env = {"MY_SETTING": "a b", "NCCL_DEBUG": "INFO", "CUDA_VISIBLE_DEVICES": "0", "_x1": "", "OMP_NUM_THREADS": "2"}
    assert validate_env(env) == env
    assert validate_env(None) == {}


def pod(name: str, rank: int | str | None, *, phase: str = "Running", ready: bool = True,
        deleting: bool = False) -> dict[str, Any]:
    labels = {} if rank is None else {"apps.kubernetes.io/pod-index": str(rank)}
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if deleting:
        metadata["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": metadata, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def test_ranks_are_matched_to_ready_pods() -> None:
    ready, problems = ranks_not_ready([pod("x-1", 1), pod("x-0", 0)], 2)
    assert ready == {0: "x-0", 1: "x-1"} and problems == []


def test_every_rank_that_is_not_ready_is_named() -> None:
    pods = [pod("x-0", 0), pod("x-1", 1, phase="Pending", ready=False), pod("x-2", 2, ready=False),
            pod("x-3", 3, deleting=True), pod("stray", None), pod("odd", "abc"), pod("x-9", 9)]
    ready, problems = ranks_not_ready(pods, 5)
    assert ready == {0: "x-0"}
    assert problems == ["rank 1 (pod x-1 is Pending)", "rank 2 (pod x-2 is Running, not Ready)",
                        "rank 3 (pod x-3 is terminating)", "rank 4 (no pod)"]


def test_a_replacement_pod_that_is_ready_wins_over_a_terminating_one() -> None:
    ready, problems = ranks_not_ready([pod("x-0", 0, deleting=True), pod("x-0", 0)], 1)
    assert ready == {0: "x-0"} and problems == []


REPORT = """\
node 1 worker 1 started
rank 1 gives up: simulated failure
E1126 10:52:53.001000 30059 torch/distributed/elastic/multiprocessing/api.py:1002] failed (exitcode: 3) \
local_rank: 0 (pid: 30070) of binary: /usr/bin/python3
Traceback (most recent call last):
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
fail_rank.py FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2025-11-26_10:52:53
  host      : ddp-1.ddp.ns.svc.cluster.local
  rank      : 3 (local_rank: 1)
  exitcode  : -15 (pid: 30071)
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2025-11-26_10:52:52
  host      : ddp-1.ddp.ns.svc.cluster.local
  rank      : 2 (local_rank: 0)
  exitcode  : 3 (pid: 30070)
  error_file: <N/A>
============================================================""".splitlines()


def test_torchrun_report_gives_the_root_cause_and_where_the_script_output_ends() -> None:
    code, rank, cut = _torchrun_report(REPORT)
    assert code == 3 and rank == "worker rank 2 (local rank 0)"
    assert REPORT[cut - 1] == "rank 1 gives up: simulated failure"


def test_output_without_a_report_is_all_the_script_s() -> None:
    lines = ["hello", "bye"]
    assert _torchrun_report(lines) == (None, "", 2)

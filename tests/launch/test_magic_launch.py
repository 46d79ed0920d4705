"""``%%devserver launch`` in a real IPython shell: the cell becomes a script on every rank of a distributed
DevServer the operator runs, and real torchrun (torch 2.13, CPU, gloo) runs it; failure, interrupt, refusals."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError

from devservers_sdk.client import DevServerClient
from devservers_sdk.launch import LaunchHandle
from tests.launch.conftest import EXAMPLE, FLAVOR, READY_TIMEOUT, SCRIPTS, DistributedServer, leftovers
from tests.magics.magic_support import CellRun, Recorder, shell_pointed_at, the_ipython_shell, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ipython() -> Any:
    return the_ipython_shell()


@pytest.fixture
def shell(ipython: Any, ddp: DistributedServer) -> Iterator[Any]:
    """The shell configured, through ``%config``, for the namespace of the module's distributed DevServer."""
    with shell_pointed_at(ipython, ddp.kubeconfig, ddp.namespace) as configured:
        yield configured


@pytest.fixture
def run_cell(shell: Any) -> Callable[..., CellRun]:
    """Run a cell as Jupyter would, recording what it writes to stdout and stderr (or into ``out``)."""

    def run(source: str, *, out: Recorder | None = None) -> CellRun:
        out, err = out or Recorder(), Recorder()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result = shell.run_cell(source, store_history=False)
        return CellRun(result, out, err)

    return run


def test_the_ddp_example_as_a_cell_runs_on_every_rank(ddp: DistributedServer, shell: Any,
                                                      run_cell: Callable[..., CellRun]) -> None:
    source = EXAMPLE.read_text()
    run = run_cell(f"%%devserver launch ddp --as trained -- --epochs 5\n{source}")
    assert run.error is None, run.stderr.text

    handle = run.result.result
    assert isinstance(handle, LaunchHandle) and handle.returncodes == {0: 0, 1: 0}
    assert shell.user_ns["trained"] is handle  # --as: the notebook's way to the handle, not IPython's `_`
    # The cell went to each rank's own home (one volume per pod), where torchrun ran it.
    script = next(arg for arg in handle.args if arg.endswith(".py"))
    assert re.fullmatch(r"/.+/cell-[0-9a-f]{12}\.py", script), handle.args
    for rank in (0, 1):
        written = ddp.client.exec(ddp.name, ["cat", script], rank=rank, check=True).stdout
        assert str(written).strip() == source.strip()

    out = run.stdout.text
    lines = [line for line in out.splitlines() if not line.startswith("Out[")]
    assert lines and all(re.match(r"\[rank [0-3] node [01]\] ", line) for line in lines), out
    # Labelled by the global rank of the process that printed the line, and its node (issue 14).
    joined = {(node, rank, node_said) for label, node, rank, node_said in
              re.findall(r"^\[rank (\d) node (\d)\] rank (\d)/4 \(node (\d)", out, re.MULTILINE) if label == rank}
    assert joined == {("0", "0", "0"), ("0", "1", "0"), ("1", "2", "1"), ("1", "3", "1")}, out
    assert "[rank 0 node 0] all_reduce sum = 6.0 (expected 6.0 = 0+1+2+3)" in lines
    losses = [float(loss) for loss in re.findall(r"^\[rank 0 node 0\] epoch \d+ loss ([\d.]+)$", out, re.MULTILINE)]
    assert len(losses) == 5 and losses[-1] < losses[0], losses
    assert all(line.startswith(("[rank ", "[node ")) for line in run.stderr.text.splitlines()), run.stderr.text


def test_a_failing_rank_raises_usage_error_naming_it(ddp: DistributedServer, shell: Any,
                                                     run_cell: Callable[..., CellRun]) -> None:
    tag = f"tag-{secrets.token_hex(4)}"
    # Node 1 exits 3 after a second; node 0 would sleep a minute unless it is stopped.
    run = run_cell(f"%%devserver launch ddp --nprocs-per-node 1 --as failed -- {tag}\n"
                   f"{(SCRIPTS / 'fail_rank.py').read_text()}")
    assert type(run.error) is UsageError, run.error
    # The cell raised, so it has no value; --as still hands over the launch, for its logs.
    failed = shell.user_ns["failed"]
    assert isinstance(failed, LaunchHandle) and failed.returncodes[1] not in (None, 0), failed.returncodes
    message = str(run.error)
    assert message.startswith("Rank 1 of the launch on DevServer 'ddp' (pod ddp-1) exited with code"), message
    assert "exited with code 3" in message and message.endswith("rank 0 was stopped.")
    # The failing rank's last words were streamed into the cell, prefixed; the error does not repeat them.
    assert "[rank 1] rank 1 gives up: simulated failure" in run.stdout.text.splitlines()
    assert "Last output" not in message and "rank 0 was not stopped" not in run.stdout.text
    for rank in (0, 1):
        assert leftovers(ddp, rank, tag) == []


def test_interrupting_the_kernel_stops_every_rank(ddp: DistributedServer,
                                                  run_cell: Callable[..., CellRun]) -> None:
    """SIGINT, as Jupyter's interrupt sends it, once every worker runs."""
    tag = f"tag-{secrets.token_hex(4)}"
    out = Recorder()
    interrupted = threading.Event()

    def interrupt_when_ready() -> None:
        wait_until(lambda: out.text.count(" ready (tag ") >= 2, timeout=120, message="both workers ready")
        interrupted.set()
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt_when_ready, daemon=True)
    watcher.start()
    run = run_cell(f"%%devserver launch ddp --nprocs-per-node 1 -- {tag}\n{(SCRIPTS / 'sleeper.py').read_text()}",
                   out=out)
    watcher.join(5)
    assert interrupted.is_set(), out.text + run.stderr.text
    assert isinstance(run.error, KeyboardInterrupt), run.error
    assert "Interrupted: every rank of the launch on ddp was stopped." in run.stderr.text
    assert "] not stopped" not in out.text  # a rank that went on would print this after its sleep
    for rank in (0, 1):
        assert leftovers(ddp, rank, tag) == []


def test_a_standalone_server_is_refused_with_the_sdks_sentence(shell: Any, client: DevServerClient) -> None:
    from devservers_sdk.launch import script_name

    client.create("solo", flavor=FLAVOR, time_to_live="1h", wait=True, timeout=READY_TIMEOUT)
    cell = "print('never runs')\n"
    with pytest.raises(UsageError) as refused:
        shell.run_cell_magic("devserver", f"launch solo -n {client.namespace}", cell)
    assert type(refused.value) is UsageError
    assert str(refused.value).startswith("DevServer 'solo' is standalone; launch runs torchrun across the pods")
    # Nothing was written: the refusal comes before the cell goes anywhere.
    found = client.exec("solo", f"ls $HOME/.cache/devservers/launch/{script_name(cell)} "
                                f"/tmp/devservers-launch/{script_name(cell)} 2>/dev/null; true", check=True)
    assert str(found.stdout).strip() == ""


def test_usage_mistakes_are_usage_errors(shell: Any) -> None:
    with pytest.raises(UsageError, match="launch runs a cell: write %%devserver launch NAME as the first line"):
        shell.run_line_magic("devserver", "launch ddp")
    with pytest.raises(UsageError, match=r"--env takes KEY=VALUE, e.g. --env NCCL_DEBUG=INFO \(got 'NOVALUE'\)"):
        shell.run_cell_magic("devserver", "launch ddp --env NOVALUE", "print(1)\n")
    with pytest.raises(UsageError, match="DevServer 'ghost' not found"):
        shell.run_cell_magic("devserver", "launch ghost", "print(1)\n")
    with pytest.raises(UsageError, match=r"--as takes a Python variable name, e.g. --as run \(got 'class'\)"):
        shell.run_cell_magic("devserver", "launch ddp --as class", "print(1)\n")
    with pytest.raises(UsageError, match="%devserver list takes no arguments after --"):
        shell.run_line_magic("devserver", "list -- --epochs 3")


def test_the_help_documents_launch(shell: Any) -> None:
    from devservers_magics.magics import DevServerMagics

    doc = DevServerMagics.devserver.__doc__ or ""
    assert "%%devserver launch NAME" in doc and "--- launch " in doc and "--nprocs-per-node N" in doc
    out = Recorder()
    with contextlib.redirect_stdout(out):
        shell.run_cell_magic("devserver", "launch --help", "pass\n")
    assert "%devserver launch [--nprocs-per-node N]" in out.text and "NAME [-- ARGS ...]" in out.text
    assert "Example: %%devserver launch ddp -- --epochs 3" in out.text

"""CheckpointManager with real torch: atomic saves, retention, resume convention, preemption, ranks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from devservers_sdk.checkpoint import (
    MANIFEST_NAME,
    RESUME_FROM_ENV,
    CheckpointManager,
    checkpoint_dir_name,
    parse_listing,
)

ROOT = Path(__file__).resolve().parents[2]


def _state(value: float) -> dict[str, torch.Tensor]:
    return {"weight": torch.full((4, 4), value), "bias": torch.arange(4.0) + value}


def _run(code: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_save_then_load_latest_round_trips(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path / "ckpt")
    assert manager.latest_step is None
    assert manager.load_latest() is None
    manager.save(_state(1.0), step=5)
    manager.save(_state(2.0), step=10)
    assert manager.latest_step == 10
    loaded = manager.load_latest()
    assert loaded is not None and loaded.step == 10
    assert torch.equal(loaded.state["weight"], torch.full((4, 4), 2.0))
    info = manager.list()[-1]
    assert (info.step, info.layout, info.world_size) == (10, "rank0", 1)
    assert info.size == (tmp_path / "ckpt" / checkpoint_dir_name(10) / "state.pt").stat().st_size


def test_crash_between_temp_write_and_rename_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    directory = tmp_path / "ckpt"
    CheckpointManager(directory).save(_state(1.0), step=3)
    # A real process dies (os._exit, no cleanup) at the moment the finished temp directory would be renamed.
    crashed = _run(f"""
        import os, torch
        from devservers_sdk.checkpoint import CheckpointManager
        os.rename = lambda *args: os._exit(9)
        CheckpointManager({str(directory)!r}).save({{"weight": torch.full((4, 4), 7.0)}}, step=4)
        """)
    assert crashed.returncode == 9, crashed.stderr
    leftovers = [entry.name for entry in directory.iterdir() if entry.name.startswith(".partial-")]
    assert len(leftovers) == 1, f"the crashed save should leave its temp directory: {sorted(os.listdir(directory))}"
    assert (directory / leftovers[0] / MANIFEST_NAME).exists(), "the crash was meant to hit after the full write"

    manager = CheckpointManager(directory)
    assert manager.latest_step == 3
    loaded = manager.load_latest()
    assert loaded is not None and loaded.step == 3
    assert torch.equal(loaded.state["weight"], torch.full((4, 4), 1.0))
    manager.save(_state(5.0), step=6)  # the next save sweeps the dead process's temp directory
    assert not [entry for entry in directory.iterdir() if entry.name.startswith(".partial-")]


def test_a_step_directory_without_its_manifest_is_never_loaded(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path)
    manager.save(_state(1.0), step=1)
    half = tmp_path / checkpoint_dir_name(2)
    half.mkdir()
    torch.save(_state(9.0), half / "state.pt")
    assert manager.latest_step == 1
    loaded = manager.load_latest()
    assert loaded is not None and torch.equal(loaded.state["bias"], torch.arange(4.0) + 1.0)


@pytest.mark.parametrize("keep", [1, 3])
def test_retention_keeps_exactly_keep(tmp_path: Path, keep: int) -> None:
    manager = CheckpointManager(tmp_path, keep=keep)
    for step in range(0, 60, 10):
        manager.save(_state(float(step)), step=step)
    assert [info.step for info in manager.list()] == list(range(0, 60, 10))[-keep:]
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [
        checkpoint_dir_name(step) for step in list(range(0, 60, 10))[-keep:]]


def test_keep_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep=0"):
        CheckpointManager(tmp_path, keep=0)


def test_saving_a_step_again_replaces_it(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path)
    manager.save(_state(1.0), step=4)
    manager.save(_state(2.0), step=4)
    loaded = manager.load_latest()
    assert loaded is not None and torch.equal(loaded.state["weight"], torch.full((4, 4), 2.0))
    assert [entry.name for entry in tmp_path.iterdir()] == [checkpoint_dir_name(4)]


def test_default_directory_and_resume_convention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVSERVERS_CHECKPOINT_DIR", str(tmp_path / "from-env"))
    manager = CheckpointManager()
    assert manager.directory == tmp_path / "from-env"
    monkeypatch.delenv(RESUME_FROM_ENV, raising=False)
    path = manager.save(_state(3.0), step=7)
    assert manager.resume() is None, "without DEVSERVERS_RESUME_FROM a script starts fresh"
    monkeypatch.setenv(RESUME_FROM_ENV, str(path))
    resumed = manager.resume()
    assert resumed is not None and resumed.step == 7
    monkeypatch.setenv(RESUME_FROM_ENV, str(tmp_path / "nothing-here"))
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        manager.resume()


def test_listing_parses_what_cat_prints(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep=5)
    for step in (2, 1):
        manager.save(_state(1.0), step=step)
    printed = "".join((Path(info.path) / MANIFEST_NAME).read_text() + "\n" for info in manager.list())
    listed = parse_listing(printed + '{"step": 3, "time"\n', str(tmp_path))  # a manifest cut short is skipped
    assert [(info.step, info.path) for info in listed] == [
        (1, str(tmp_path / checkpoint_dir_name(1))), (2, str(tmp_path / checkpoint_dir_name(2)))]
    assert listed == manager.list()


def test_on_preemption_saves_then_the_process_ends_by_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time, torch
        from devservers_sdk.checkpoint import CheckpointManager
        manager = CheckpointManager({str(tmp_path)!r})
        step = 0
        manager.on_preemption(lambda signum: manager.save({{"step": step}}, step))
        while True:
            step += 1
            if step == 3:
                print("ready", flush=True)
            time.sleep(0.01)
        """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == -signal.SIGTERM
    loaded = CheckpointManager(tmp_path).load_latest()
    assert loaded is not None and loaded.step > 0 and loaded.state == {"step": loaded.step}


_RANKS_SCRIPT = """
import os, sys, torch, torch.distributed as dist
from devservers_sdk.checkpoint import CheckpointManager
dist.init_process_group("gloo")
rank = dist.get_rank()
directory = os.path.join(sys.argv[1], f"home-{rank}")  # each rank its own home, as on a DevServer
manager = CheckpointManager(directory)
written = manager.save({"weight": torch.full((2,), 3.0), "rank": rank}, step=11)
loaded = manager.load_latest()
# One write per line: both ranks share torchrun's stdout, and print() writes the text and its newline apart
# (with PYTHONUNBUFFERED, two writes), so the two ranks' lines could interleave into one.
sys.stdout.write(f"RESULT rank={rank} wrote={written is not None} step={loaded.step} from={loaded.state['rank']} "
                 f"files={sorted(os.listdir(directory)) if os.path.isdir(directory) else []}\\n")
sys.stdout.flush()
dist.barrier()
dist.destroy_process_group()
"""


def test_replicated_group_rank0_writes_and_every_rank_loads(tmp_path: Path) -> None:
    script = tmp_path / "ranks.py"
    script.write_text(_RANKS_SCRIPT)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
         str(tmp_path)], capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = sorted(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    assert lines == [
        f"RESULT rank=0 wrote=True step=11 from=0 files=['{checkpoint_dir_name(11)}']",
        "RESULT rank=1 wrote=False step=11 from=0 files=[]",
    ]
    manifest = json.loads((tmp_path / "home-0" / checkpoint_dir_name(11) / MANIFEST_NAME).read_text())
    assert (manifest["layout"], manifest["worldSize"]) == ("rank0", 2)

"""Checkpoints for training scripts that must survive a stop, a drain or a reclaimed spot node.

::

    from devservers_sdk.checkpoint import CheckpointManager

    manager = CheckpointManager()                       # $DEVSERVERS_CHECKPOINT_DIR, else ~/checkpoints
    restored = manager.resume()                         # set by `devctl launch NAME --resume`, else None
    start = restored.step + 1 if restored else 0
    if restored:
        model.load_state_dict(restored.state["model"])
    manager.on_preemption(lambda signum: manager.save({"model": model.state_dict()}, step))
    for step in range(start, steps):
        ...
        if step % 10 == 0:
            manager.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, step)

Layout: ``<directory>/step-00000042/`` holds the state and a ``checkpoint.json`` (step, time, size, rank
layout). A save writes everything into a hidden ``.partial-...`` directory, flushes it to disk and then
renames it into place: a directory rename is atomic, so a crash at any moment leaves either the previous
checkpoints alone or the new one complete, and a ``step-*`` directory without its ``checkpoint.json`` is never
loaded. Pruning renames a checkpoint out of the ``step-*`` namespace before deleting it, for the same reason.

Under ``torch.distributed`` the manager is rank-aware:

- **replicated** (DDP, the default): every rank holds the same state, so rank 0 alone writes it (into its own
  home) and the others return at once. ``load_latest``/``resume`` read on rank 0 and broadcast the state to
  every rank, because the other ranks' homes do not hold it.
- **sharded** (``sharded=True``, FSDP and friends): every rank writes its shards with
  ``torch.distributed.checkpoint``; rank 0 writes ``checkpoint.json`` and renames once all have finished. The
  directory must then be one that every rank sees (the DevServer's ``/shared`` claim), and loading fills a
  state dict of the right shape in place.

The resume convention, for scripts that do not use this class: ``devctl launch NAME --resume`` and
``launch(..., resume=True)`` set ``DEVSERVERS_RESUME_FROM`` (the newest complete checkpoint directory on rank
0, e.g. ``/home/dev/checkpoints/step-00000042``) and ``DEVSERVERS_RESUME_STEP`` on every process, and
``DEVSERVERS_CHECKPOINT_DIR`` always names the directory the launch looked in.

torch is imported only when a method needs it, so ``devctl`` can read checkpoint listings without it.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKPOINT_DIR_ENV",
    "DEFAULT_CHECKPOINT_DIR",
    "MANIFEST_NAME",
    "RESUME_FROM_ENV",
    "RESUME_STEP_ENV",
    "Checkpoint",
    "CheckpointInfo",
    "CheckpointListing",
    "CheckpointManager",
    "checkpoint_dir_name",
    "parse_listing",
]

CHECKPOINT_DIR_ENV = "DEVSERVERS_CHECKPOINT_DIR"
RESUME_FROM_ENV = "DEVSERVERS_RESUME_FROM"
RESUME_STEP_ENV = "DEVSERVERS_RESUME_STEP"
DEFAULT_CHECKPOINT_DIR = "~/checkpoints"
MANIFEST_NAME = "checkpoint.json"
_STATE_FILE = "state.pt"
_PREFIX = "step-"
_PARTIAL = ".partial-"
_DELETING = ".deleting-"


def checkpoint_dir_name(step: int) -> str:
    """The directory name of the checkpoint of ``step`` (zero-padded, so names sort by step)."""
    return f"{_PREFIX}{step:08d}"


@dataclass(frozen=True)
class CheckpointInfo:
    """One complete checkpoint, as ``checkpoint.json`` describes it (what ``devctl checkpoints`` lists).

    Attributes:
        step: the training step it was saved at.
        path: its directory.
        saved_at: when it was renamed into place (UTC).
        size: bytes of its files.
        layout: ``"rank0"`` (replicated state written by rank 0) or ``"sharded"`` (one shard per rank).
        world_size: processes in the group that saved it (1 outside ``torch.distributed``).
    """

    step: int
    path: str
    saved_at: datetime
    size: int
    layout: str
    world_size: int

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], path: str) -> CheckpointInfo:
        return cls(step=int(manifest["step"]), path=path, saved_at=datetime.fromisoformat(manifest["time"]),
                   size=int(manifest["size"]), layout=str(manifest["layout"]),
                   world_size=int(manifest["worldSize"]))


@dataclass(frozen=True)
class CheckpointListing:
    """What ``DevServerClient.checkpoints`` found: where it looked, on which rank, and the checkpoints."""

    directory: str
    rank: int
    checkpoints: builtins.list[CheckpointInfo]

    @property
    def latest(self) -> CheckpointInfo | None:
        return self.checkpoints[-1] if self.checkpoints else None


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: its step, its state, and where it came from."""

    step: int
    state: Any
    path: str


def parse_listing(text: str, directory: str) -> list[CheckpointInfo]:
    """Read the ``checkpoint.json`` documents a listing command printed, one per line, oldest first.

    ``devctl checkpoints`` runs ``cat <dir>/step-*/checkpoint.json`` in a pod (its image need not have this
    package); a line that is not a complete manifest (a checkpoint being pruned at that moment) is skipped.
    """
    found: list[CheckpointInfo] = []
    for line in text.splitlines():
        try:
            manifest = json.loads(line)
            found.append(CheckpointInfo.from_manifest(
                manifest, os.path.join(directory, checkpoint_dir_name(int(manifest["step"])))))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(found, key=lambda info: info.step)


def _group() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one; never imports torch itself."""
    import sys

    if "torch" not in sys.modules:
        return 0, 1
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _broadcast_from_rank0(value: Any, rank: int) -> Any:
    """Rank 0's ``value`` on every rank. Not ``broadcast_object_list``: its receiving side needs numpy, which
    a training image need not have."""
    import io

    import torch
    import torch.distributed as dist

    payload = b""
    if rank == 0:
        buffer = io.BytesIO()
        torch.save(value, buffer)
        payload = buffer.getvalue()
    length = torch.tensor([len(payload)], dtype=torch.int64)
    dist.broadcast(length, src=0)
    data = (torch.frombuffer(bytearray(payload), dtype=torch.uint8) if rank == 0
            else torch.empty(int(length.item()), dtype=torch.uint8))
    dist.broadcast(data, src=0)
    if rank == 0:
        return value
    return torch.load(io.BytesIO(bytes(data.untyped_storage())), map_location="cpu", weights_only=False)


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(path: Path) -> int:
    """Flush every file under ``path`` and the directories themselves; the bytes written."""
    size = 0
    for root, _dirs, files in os.walk(path):
        for file in files:
            with open(os.path.join(root, file), "rb+") as handle:
                os.fsync(handle.fileno())
                size += os.fstat(handle.fileno()).st_size
        _fsync_dir(Path(root))
    return size


class CheckpointManager:
    """Save, find and load training checkpoints atomically, keeping the newest ``keep``.

    Args:
        directory: where checkpoints live. Default: ``$DEVSERVERS_CHECKPOINT_DIR``, else ``~/checkpoints``
            (the persistent home, which survives stops and follows the pod to another node).
        keep: how many complete checkpoints to keep (at least 1); older ones are deleted after each save.
        sharded: every rank saves its own shards with ``torch.distributed.checkpoint`` (the directory must be
            shared by all ranks); otherwise rank 0 saves the replicated state.

    Raises:
        ValueError: ``keep`` is less than 1.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, keep: int = 3,
                 sharded: bool = False) -> None:
        if keep < 1:
            raise ValueError(f"keep={keep}: a CheckpointManager must keep at least 1 checkpoint")
        chosen = directory if directory is not None else os.environ.get(CHECKPOINT_DIR_ENV, DEFAULT_CHECKPOINT_DIR)
        self.directory = Path(os.path.expanduser(os.fspath(chosen)))
        self.keep = keep
        self.sharded = sharded
        self._preemption_callbacks: builtins.list[Callable[[int], None]] = []
        self._previous_handler: Any = None

    def __repr__(self) -> str:
        return f"CheckpointManager({str(self.directory)!r}, keep={self.keep}, sharded={self.sharded})"

    # --- reading ------------------------------------------------------------------------------------

    def list(self) -> builtins.list[CheckpointInfo]:
        """The complete checkpoints in this directory, oldest first (on this rank's filesystem)."""
        found = []
        if not self.directory.is_dir():
            return []
        for entry in self.directory.iterdir():
            if not entry.name.startswith(_PREFIX):
                continue
            try:
                manifest = json.loads((entry / MANIFEST_NAME).read_text())
                found.append(CheckpointInfo.from_manifest(manifest, str(entry)))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # incomplete or foreign: never loaded
        return sorted(found, key=lambda info: info.step)

    @property
    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint in this rank's directory, or None."""
        found = self.list()
        return found[-1].step if found else None

    def load_latest(self, state: Any = None) -> Checkpoint | None:
        """Load the newest complete checkpoint, or return None when there is none (on every rank).

        Args:
            state: sharded only: the state dict to fill in place (its tensors give the shapes and shards).

        Raises:
            ValueError: ``sharded`` without a ``state`` to load into.
        """
        rank, world_size = _group()
        if self.sharded or world_size == 1 or rank == 0:
            found = self.list()
            local_path = found[-1].path if found else None
        else:
            local_path = None
        return self.load(local_path, state=state)

    def resume(self, state: Any = None) -> Checkpoint | None:
        """Load the checkpoint a resumed launch names in ``$DEVSERVERS_RESUME_FROM``; None when not resuming."""
        path = os.environ.get(RESUME_FROM_ENV) or None
        return self.load(path, state=state) if path is not None else None

    def load(self, path: str | os.PathLike[str] | None, *, state: Any = None) -> Checkpoint | None:
        """Load the checkpoint directory ``path`` (rank 0's path counts for a replicated group).

        Raises:
            FileNotFoundError: ``path`` is not a complete checkpoint.
        """
        rank, world_size = _group()
        if self.sharded:
            return self._load_sharded(path, state)
        loaded: Checkpoint | None = None
        if rank == 0 and path is not None:
            loaded = self._read(Path(path))
        if world_size > 1:
            loaded = _broadcast_from_rank0(loaded, rank)
        return loaded

    @staticmethod
    def _manifest(path: Path) -> dict[str, Any]:
        try:
            manifest: dict[str, Any] = json.loads((path / MANIFEST_NAME).read_text())
        except (OSError, ValueError) as error:
            raise FileNotFoundError(f"{path} is not a complete checkpoint (no readable {MANIFEST_NAME}): "
                                    f"{error}") from error
        return manifest

    def _read(self, path: Path) -> Checkpoint:
        import torch

        manifest = self._manifest(path)
        state = torch.load(path / _STATE_FILE, map_location="cpu", weights_only=False)
        return Checkpoint(step=int(manifest["step"]), state=state, path=str(path))

    def _load_sharded(self, path: str | os.PathLike[str] | None, state: Any) -> Checkpoint | None:
        if state is None:
            raise ValueError("a sharded checkpoint loads in place: pass state= (the state dict to fill)")
        if path is None:
            return None
        import torch.distributed.checkpoint as dcp

        manifest = self._manifest(Path(path))
        dcp.load(state, checkpoint_id=str(path))
        return Checkpoint(step=int(manifest["step"]), state=state, path=str(path))

    # --- writing ------------------------------------------------------------------------------------

    def save(self, state: Any, step: int) -> str | None:
        """Save ``state`` as the checkpoint of ``step`` and prune old ones beyond ``keep``.

        Replicated: rank 0 writes, the others return None at once (no collective, so a save from a SIGTERM
        handler cannot hang on a peer that is already gone). Sharded: a collective; every rank must call it.

        Returns:
            The checkpoint's directory on the rank that wrote it, else None.
        """
        if step < 0:
            raise ValueError(f"step={step}: steps are counted from 0")
        rank, world_size = _group()
        if self.sharded:
            return self._save_sharded(state, step, rank, world_size)
        if rank != 0:
            return None
        import torch

        partial = self._partial_dir(step, unique=True)
        partial.mkdir(parents=True)
        torch.save(state, partial / _STATE_FILE)
        return str(self._commit(partial, step, layout="rank0", world_size=world_size))

    def _save_sharded(self, state: Any, step: int, rank: int, world_size: int) -> str | None:
        import torch.distributed as dist
        import torch.distributed.checkpoint as dcp

        # Every rank must write into the same partial directory: its name depends on the step only.
        partial = self._partial_dir(step, unique=False)
        if rank == 0:
            shutil.rmtree(partial, ignore_errors=True)  # what a crashed save of this step left
            partial.mkdir(parents=True)
        if world_size > 1:
            dist.barrier()
        dcp.save(state, checkpoint_id=str(partial))
        final = None
        if rank == 0:
            final = str(self._commit(partial, step, layout="sharded", world_size=world_size))
        if world_size > 1:
            dist.barrier()
        return final

    def _partial_dir(self, step: int, *, unique: bool) -> Path:
        suffix = f"-{os.getpid()}-{uuid.uuid4().hex[:8]}" if unique else ""
        return self.directory / f"{_PARTIAL}{checkpoint_dir_name(step)}{suffix}"

    def _commit(self, partial: Path, step: int, *, layout: str, world_size: int) -> Path:
        size = _fsync_tree(partial)
        manifest = {"step": step, "time": datetime.now(UTC).isoformat(timespec="seconds"), "size": size,
                    "layout": layout, "worldSize": world_size}
        with open(partial / MANIFEST_NAME, "w") as handle:
            json.dump(manifest, handle)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(partial)
        final = self.directory / checkpoint_dir_name(step)
        if final.exists():  # saving a step again: move the old one aside first, rename cannot replace a directory
            os.rename(final, self.directory / f"{_DELETING}{final.name}-{uuid.uuid4().hex[:8]}")
        os.rename(partial, final)
        _fsync_dir(self.directory)
        self._prune()
        return final

    def _prune(self) -> None:
        complete = self.list()
        for info in complete[: max(0, len(complete) - self.keep)]:
            doomed = self.directory / f"{_DELETING}{Path(info.path).name}-{uuid.uuid4().hex[:8]}"
            os.rename(info.path, doomed)  # out of the step-* namespace at once: never half loadable
            shutil.rmtree(doomed, ignore_errors=True)
        for entry in self.directory.iterdir():
            if entry.name.startswith(_DELETING) or (
                    entry.name.startswith(_PARTIAL) and not self._partial_in_use(entry.name)):
                shutil.rmtree(entry, ignore_errors=True)

    @staticmethod
    def _partial_in_use(name: str) -> bool:
        # ".partial-step-N-<pid>-<hex>": a live process may still be writing it (another manager, same dir).
        parts = name.split("-")
        if len(parts) < 5 or not parts[-2].isdigit():
            return False
        pid = int(parts[-2])
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    # --- preemption -----------------------------------------------------------------------------------

    def on_preemption(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(signum)`` when SIGTERM arrives (a drain, a reclaimed spot node, a stop), once.

        The pod's termination grace period (which covers the DevServer's checkpoint hook timeout) is the time
        the callback has. After it returns, the previous SIGTERM disposition runs again (by default the
        process ends by SIGTERM), so torchrun still sees its worker stop. Call from the main thread.
        """
        self._preemption_callbacks.append(callback)
        if self._previous_handler is None:
            self._previous_handler = signal.signal(signal.SIGTERM, self._preempted)

    def _preempted(self, signum: int, frame: Any) -> None:
        callbacks, self._preemption_callbacks = self._preemption_callbacks, []
        try:
            for callback in callbacks:
                callback(signum)
        finally:
            previous = self._previous_handler
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                os.kill(os.getpid(), signal.SIGTERM)

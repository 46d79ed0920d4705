"""``devctl cp``, ``devctl sync`` and the SDK's ``copy_to``/``copy_from``/``sync``, through a distributed
DevServer made by the operator: a tree with modes, a symlink and a 50 MB file goes there and back intact,
reaches every rank, and a second sync of an unchanged tree sends nothing.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from devservers_sdk.connect.files import _ArchivePipe, sync_candidates
from devservers_sdk.errors import ExecError, InvalidSpecError
from tests.cli.devctl_support import make_devctl
from tests.connect.conftest import Server

BIG = 50 * 1024 * 1024


def make_tree(root: Path) -> Path:
    tree = root / "tree"
    (tree / "sub" / "deep").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "a.txt").chmod(0o640)
    (tree / "run.sh").write_text("#!/bin/sh\necho run\n")
    (tree / "run.sh").chmod(0o755)
    (tree / "sub" / "deep" / "big.bin").write_bytes(os.urandom(BIG))
    (tree / "link").symlink_to("a.txt")
    (tree / ".gitignore").write_text("*.log\nbuild/\n")
    (tree / "noise.log").write_text("ignored\n")
    (tree / "build").mkdir()
    (tree / "build" / "out.o").write_text("ignored\n")
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return tree


def snapshot(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, tuple[str, int, str]]:
    """Every entry under root: (kind, permission bits, content hash or link target)."""
    found: dict[str, tuple[str, int, str]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] in skip:
            continue
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            found[rel] = ("link", 0, os.readlink(path))
        elif stat.S_ISDIR(mode):
            found[rel] = ("dir", 0, "")
        else:
            found[rel] = ("file", stat.S_IMODE(mode), hashlib.sha256(path.read_bytes()).hexdigest())
    return found


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("local"))


def test_copy_a_tree_there_and_back(ddp: Server, tree: Path, tmp_path: Path) -> None:
    sent = ddp.client.copy_to(ddp.name, tree, "~/roundtrip/")
    assert sent.files == len([p for p in snapshot(tree).values() if p[0] != "dir"])
    assert sent.bytes_sent > BIG
    back = tmp_path / "back"
    received = ddp.client.copy_from(ddp.name, sent.remote_path, back)
    assert snapshot(back) == snapshot(tree)
    assert received.files == sent.files
    assert os.readlink(back / "link") == "a.txt"


def test_devctl_cp_both_ways_and_to_every_rank(ddp: Server, tree: Path, tmp_path: Path) -> None:
    devctl = make_devctl("process", ddp.kubeconfig)
    remote = "~/devctl-cp"  # each rank's own home (the local cluster's pods share this machine's /tmp)
    result = devctl("cp", str(tree), f"{ddp.name}:{remote}", "--all-ranks")
    assert result.exit_code == 0, result.output
    assert f"to {ddp.name}:/home/dev/devctl-cp (rank 0, 1): 16 files" in result.stdout, result.output
    for rank in (0, 1):
        result = devctl("cp", f"{ddp.name}:{remote}", str(tmp_path / f"rank{rank}"), "--rank", str(rank))
        assert result.exit_code == 0, result.output
        assert snapshot(tmp_path / f"rank{rank}") == snapshot(tree)
    missing = devctl("cp", f"{ddp.name}:/no/such/path", str(tmp_path / "x"))
    assert missing.exit_code == 1 and "No such file" in missing.stderr, missing.output
    both_local = devctl("cp", str(tree), str(tmp_path / "y"))
    assert both_local.exit_code == 2 and "NAME:PATH" in both_local.stderr


def test_sync_sends_only_what_changed_to_every_rank(ddp: Server, tree: Path, tmp_path: Path) -> None:
    destination = f"~/sync-{ddp.namespace}"
    first = ddp.client.sync(ddp.name, tree, destination)
    expected = {rel for rel, entry in snapshot(tree, skip=(".git", "build")).items()
                if entry[0] != "dir" and rel != "noise.log"}
    assert first.ranks == [0, 1]
    assert first.files == 2 * len(expected)
    for rank in (0, 1):
        copy = tmp_path / f"synced{rank}"
        ddp.client.copy_from(ddp.name, destination, copy, rank=rank)
        local = {rel: entry for rel, entry in snapshot(tree).items() if rel in expected}
        assert {rel: entry for rel, entry in snapshot(copy).items() if entry[0] != "dir"} == local

    second = ddp.client.sync(ddp.name, tree, destination)
    assert (second.files, second.bytes_sent) == (0, 0)

    (tree / "run.sh").write_text("#!/bin/sh\necho changed\n")
    third = ddp.client.sync(ddp.name, tree, destination)
    assert third.files == 2
    assert 0 < third.bytes_sent < 64 * 1024  # one small file per rank, not the 50 MB one
    assert ddp.client.exec(ddp.name, f"sh {destination}/run.sh", rank=1).stdout == "changed\n"


def test_devctl_sync_says_when_up_to_date(ddp: Server, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('hi')\n")
    devctl = make_devctl("process", ddp.kubeconfig)
    first = devctl("sync", str(project), ddp.name)
    assert first.exit_code == 0 and "Synced" in first.stdout and "~/project" not in first.stdout, first.output
    again = devctl("sync", str(project), ddp.name)
    assert again.exit_code == 0 and "is up to date" in again.stdout, again.output
    ran = ddp.client.exec(ddp.name, "python3 ~/project/train.py", rank=1)
    assert ran.stdout == "hi\n"


def test_bad_paths_say_what_to_do(ddp: Server, tmp_path: Path) -> None:
    with pytest.raises(InvalidSpecError, match="does not exist"):
        ddp.client.copy_to(ddp.name, tmp_path / "absent", "~/x")
    with pytest.raises(InvalidSpecError, match="not one"):
        ddp.client.sync(ddp.name, tmp_path / "absent")
    with pytest.raises(ExecError, match="No such file"):
        ddp.client.copy_from(ddp.name, "/no/such/file", tmp_path)


def test_sync_candidates_in_a_git_work_tree(tmp_path: Path) -> None:
    repo = make_tree(tmp_path)
    subprocess.run(["rm", "-rf", str(repo / ".git"), str(repo / "sub")], check=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "untracked.py").write_text("")
    assert sync_candidates(repo) == [".gitignore", "a.txt", "link", "run.sh", "untracked.py"]


def test_an_archive_the_pod_stopped_reading_does_not_hang_the_copy(tmp_path: Path) -> None:
    """An exec session that ends before it has read the whole archive (it failed, or the pod's tar stopped)
    must not leave the copy waiting for the thread that writes the archive: a loaded trial's sync hung for good."""
    big = tmp_path / "big"
    big.write_bytes(os.urandom(4 * 1024 * 1024))  # far more than a pipe holds
    pipe = _ArchivePipe(lambda archive: archive.add(str(big), arcname="big"))
    finished = threading.Event()
    threading.Thread(target=lambda: (pipe.finish(), finished.set()), daemon=True).start()
    assert finished.wait(60), "finish() still waits for the archive's writer after the reader went away"

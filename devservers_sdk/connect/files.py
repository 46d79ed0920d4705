"""Files both ways over ``pods/exec``: ``copy_to``, ``copy_from`` (``tar`` streams) and ``sync``.

No port, no agent, nothing but ``tar`` (and, for ``sync``, ``python3``) in the image: a copy is a tar
stream piped into ``tar -x`` in the pod, or out of ``tar -c`` there, as ``kubectl cp`` does. The archive is
written by a thread into a pipe that the exec session reads as the socket drains, so a 50 MB file never
sits in memory whole. Modes and modification times travel in the archive; ownership does not (the pod's
user owns what it receives, ``tar -o``), and extraction on this side uses Python's ``tar`` filter, which
refuses absolute paths, ``..`` and links out of the target.

``sync`` uploads a working directory to every rank and sends only what changed: it lists the files to send
(``git ls-files --cached --others --exclude-standard`` in a Git work tree, so ``.git`` and whatever
``.gitignore`` ignores stay home; otherwise a walk that skips ``.git`` and applies the top-level
``.gitignore``), asks each pod for the size, modification time, mode and link target of the same paths
(one small ``python3`` script), and archives only the differences. A second sync of an unchanged tree
sends no archive at all (``SyncResult.bytes_sent == 0``). Files deleted locally are left on the pod: a sync
never deletes anything there.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import os
import posixpath
import subprocess
import tarfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .. import views
from ..errors import ExecError, InvalidSpecError

if TYPE_CHECKING:
    from .target import ConnectClient

_PIPE_CHUNK = 256 * 1024

# Where ``~`` in a remote path is the pod's ``$HOME``: expanded by the pod's shell, not ours.
_EXPAND = 'd=$1; case $d in "~") d=$HOME;; "~/"*) d=$HOME/${d#"~/"};; esac; '

_REMOTE_LIST = r"""
import json, os, sys
root = os.path.expanduser(sys.argv[1])
out = {}
for rel in json.load(sys.stdin):
    try:
        st = os.lstat(os.path.join(root, rel))
    except OSError:
        continue
    link = os.readlink(os.path.join(root, rel)) if os.path.islink(os.path.join(root, rel)) else None
    out[rel] = [st.st_size, int(st.st_mtime), st.st_mode & 0o7777, link]
json.dump(out, sys.stdout)
"""


@dataclass
class TransferResult:
    """What a copy or sync moved.

    Attributes:
        files: regular files and symlinks sent (per rank, summed).
        bytes_sent: size of the archives sent (0: nothing was sent at all).
        ranks: the ranks it went to (or came from).
        remote_path: the directory or file on the pods, ``~`` expanded by the pod.
    """

    files: int = 0
    bytes_sent: int = 0
    ranks: list[int] = field(default_factory=list)
    remote_path: str = ""


# -- local side --------------------------------------------------------------------------------------------

class _ArchivePipe:
    """A tar archive written by a thread into a pipe: the read end is an exec session's stdin."""

    def __init__(self, write: Any) -> None:
        read_fd, write_fd = os.pipe()
        self.reader = os.fdopen(read_fd, "rb", buffering=0)
        self._writer = os.fdopen(write_fd, "wb")
        self._write = write
        self.bytes = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="devservers-tar", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        counted = _CountingWriter(self._writer)
        try:
            with tarfile.open(fileobj=counted, mode="w|", format=tarfile.PAX_FORMAT,
                              bufsize=_PIPE_CHUNK) as archive:
                self._write(archive)
        except BrokenPipeError:
            pass  # the pod's tar stopped reading: its error is the one worth reporting
        except BaseException as exc:
            self.error = exc
        finally:
            self.bytes = counted.count
            with contextlib.suppress(OSError):
                self._writer.close()

    def finish(self) -> None:
        # The read end is closed first: an exec session that ended before reading the whole archive (a failed
        # exec, a tar that stopped) leaves the writer blocked on a full pipe, and only EPIPE wakes it. Joined
        # first, a loaded trial's `sync` waited for it forever.
        self.reader.close()
        self._thread.join()
        if self.error is not None:
            raise self.error


class _CountingWriter(io.RawIOBase):
    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._raw.write(data)
        self.count += len(data)
        return len(data)


class _ChunkReader(io.RawIOBase):
    """The stdout of an exec stream as a readable file, for ``tarfile`` in stream mode."""

    def __init__(self, chunks: Iterator[tuple[str, str | bytes]], stderr: bytearray) -> None:
        self._chunks = chunks
        self._stderr = stderr
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            item = next(self._chunks, None)
            if item is None:
                return 0
            stream, chunk = item
            if stream == "stderr":
                self._stderr += chunk if isinstance(chunk, bytes) else chunk.encode()
            else:
                self._pending = chunk if isinstance(chunk, bytes) else chunk.encode()
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def sync_candidates(root: Path) -> list[str]:
    """The files of ``root`` a sync sends, as POSIX paths relative to it, sorted.

    In a Git work tree: what Git tracks or would track (``.gitignore`` and ``.git/info/exclude`` obeyed),
    that exists. Elsewhere: every file and symlink, without ``.git`` and the patterns of ``root/.gitignore``.
    """
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], capture_output=True, check=True, timeout=120).stdout
        inside = subprocess.run(["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
                                capture_output=True, text=True, timeout=60).stdout.strip() == "true"
    except (OSError, subprocess.SubprocessError):
        inside = False
    if inside:
        paths = [p for p in listed.decode("utf-8", "surrogateescape").split("\0") if p]
        return sorted(p for p in paths if (os.path.lexists(root / p) and not (root / p).is_dir())
                      or (root / p).is_symlink())
    patterns = _gitignore_patterns(root / ".gitignore")
    found: list[str] = []
    for directory, dirs, files in os.walk(root):
        rel_dir = Path(directory).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        kept_dirs = []
        for name in sorted(dirs):
            rel = posixpath.join(rel_dir, name)
            if name == ".git" or _ignored(rel, patterns, is_dir=True):
                continue
            if (Path(directory) / name).is_symlink():
                found.append(rel)  # a link to a directory travels as a link
                continue
            kept_dirs.append(name)
        dirs[:] = kept_dirs
        found.extend(rel for rel in (posixpath.join(rel_dir, name) for name in files)
                     if not _ignored(rel, patterns, is_dir=False))
    return sorted(found)


def _gitignore_patterns(path: Path) -> list[str]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "!"))]


def _ignored(rel: str, patterns: Iterable[str], *, is_dir: bool) -> bool:
    parts = rel.split("/")
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if dir_only and not is_dir:
            # a file is still ignored when one of its parent directories matches
            if any(fnmatch.fnmatch(part, pattern) for part in parts[:-1]):
                return True
            continue
        if "/" in pattern.lstrip("/"):
            if fnmatch.fnmatch(rel, pattern.lstrip("/")):
                return True
        elif pattern.startswith("/"):
            if fnmatch.fnmatch(parts[0], pattern[1:]) and len(parts) == 1:
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def _local_state(root: Path, rel: str) -> list[Any]:
    path = root / rel
    st = path.lstat()
    link = os.readlink(path) if path.is_symlink() else None
    return [st.st_size, int(st.st_mtime), st.st_mode & 0o7777, link]


def _same(local: list[Any], remote: list[Any] | None) -> bool:
    if remote is None:
        return False
    if local[3] is not None or remote[3] is not None:
        return bool(local[3] == remote[3])  # links: only the target matters (their mtimes are not restored)
    return bool(local[:3] == remote[:3])


# -- the operations -------------------------------------------------------------------------------------

def _ranks(client: ConnectClient, name: str, rank: int | None, all_ranks: bool) -> list[int]:
    if not all_ranks:
        return [rank or 0]
    return list(range(views.world_size(client.get(name))))


def _remote_dir(path: str) -> str:
    if not path or "\0" in path:
        raise InvalidSpecError(f"The path in the DevServer must be a non-empty path, got {path!r}.",
                               field="remote_path")
    return path


def _send_archive(client: ConnectClient, name: str, rank: int, directory: str,
                  write: Any) -> int:
    """Unpack an archive (written by ``write(tarfile)``) into ``directory`` of one pod; the bytes sent."""
    pipe = _ArchivePipe(write)
    script = _EXPAND + 'mkdir -p -- "$d" && exec tar -x -p -o -f - -C "$d"'
    try:
        result = client.exec(name, ["/bin/sh", "-c", script, "sh", directory], rank=rank, stdin=pipe.reader,
                             text=True)
    finally:
        pipe.finish()
    if result.returncode != 0:
        raise ExecError(f"Copying into {directory} of DevServer '{name}' (rank {rank}) failed: "
                        f"{str(result.stderr).strip() or f'tar exited with {result.returncode}'}. Check the path "
                        f"and that the image has tar.", result=result, kind="DevServer", name=name)
    return pipe.bytes


def copy_to(client: ConnectClient, name: str, source: str | os.PathLike[str], destination: str, *,
            rank: int = 0, all_ranks: bool = False) -> TransferResult:
    """See ``DevServerClient.copy_to``."""
    local = Path(source)
    if not os.path.lexists(local):
        raise InvalidSpecError(f"Nothing to copy: local path '{source}' does not exist.", field="source")
    destination = _remote_dir(destination)
    result = TransferResult(remote_path=destination)
    for target_rank in _ranks(client, name, rank, all_ranks):
        probe = client.exec(name, ["/bin/sh", "-c", _EXPAND + 'if [ -d "$d" ]; then echo dir; fi; echo "$d"', "sh",
                                   destination], rank=target_rank, check=True)
        lines = str(probe.stdout).splitlines()
        is_dir, expanded = lines[0] == "dir", lines[-1]
        if is_dir or destination.endswith("/"):
            directory, top = expanded, local.resolve().name if local.name in ("", ".", "..") else local.name
        else:
            directory, top = posixpath.dirname(expanded) or ".", posixpath.basename(expanded)
        counted = {"files": 0}

        def write(archive: tarfile.TarFile, top: str = top, counted: dict[str, int] = counted) -> None:
            for path, arcname in _walk(local, top):
                if not _add_to_archive(archive, path, arcname).isdir():
                    counted["files"] += 1

        result.bytes_sent += _send_archive(client, name, target_rank, directory, write)
        result.files += counted["files"]
        result.ranks.append(target_rank)
        result.remote_path = posixpath.join(directory, top)
    return result


def _walk(local: Path, top: str) -> Iterator[tuple[Path, str]]:
    yield local, top
    if local.is_dir() and not local.is_symlink():
        for directory, dirs, files in os.walk(local):
            dirs.sort()
            rel = Path(directory).relative_to(local).as_posix()
            prefix = top if rel == "." else f"{top}/{rel}"
            for entry in sorted(dirs) + sorted(files):
                yield Path(directory) / entry, f"{prefix}/{entry}"


def copy_from(client: ConnectClient, name: str, source: str, destination: str | os.PathLike[str], *,
              rank: int = 0) -> TransferResult:
    """See ``DevServerClient.copy_from``."""
    source = _remote_dir(source).rstrip("/") or "/"
    local = Path(destination)
    if local.is_dir():
        into, rename = local, None
    else:
        if not local.parent.is_dir():
            raise InvalidSpecError(f"Cannot copy to '{destination}': its directory '{local.parent}' does not "
                                   f"exist.", field="destination")
        into, rename = local.parent, local.name
    script = _EXPAND + ('{ [ -e "$d" ] || [ -L "$d" ]; } || { echo "$d: No such file or directory" >&2; exit 2; }; '
                        'cd -- "$(dirname -- "$d")" && exec tar -c -f - -- "$(basename -- "$d")"')
    stderr = bytearray()
    counted = {"files": 0, "bytes": 0}

    def arrange(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        if rename is not None:
            _, _, rest = member.name.partition("/")
            member = member.replace(name=f"{rename}/{rest}" if rest else rename, deep=False)
        filtered = tarfile.tar_filter(member, path)
        if filtered is not None and not filtered.isdir():
            counted["files"] += 1
            counted["bytes"] += filtered.size
        return filtered

    with client.exec_stream(name, ["/bin/sh", "-c", script, "sh", source], rank=rank, text=False) as stream:
        reader = io.BufferedReader(_ChunkReader(iter(stream), stderr), buffer_size=_PIPE_CHUNK)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as archive:
                archive.extractall(into, filter=arrange)
        except tarfile.ReadError as exc:
            with contextlib.suppress(Exception):
                for _ in stream:
                    pass
            why = stderr.decode("utf-8", "replace").strip() or str(exc)
            raise ExecError(f"Cannot copy '{source}' from DevServer '{name}' (rank {rank}): {why}.",
                            kind="DevServer", name=name) from exc
        for _ in stream:
            pass  # the end of the archive is not the end of the stream: read to the exit status
    if stream.returncode:
        why = stderr.decode("utf-8", "replace").strip() or f"tar exited with {stream.returncode}"
        raise ExecError(f"Cannot copy '{source}' from DevServer '{name}' (rank {rank}): {why}.",
                        kind="DevServer", name=name)
    return TransferResult(files=counted["files"], bytes_sent=0, ranks=[rank], remote_path=source)


def default_remote_dir(local: Path) -> str:
    """Where ``sync`` puts a directory by default: the home, under the directory's own name."""
    return f"~/{local.resolve().name}"


def sync(client: ConnectClient, name: str, source: str | os.PathLike[str], destination: str | None = None, *,
         ranks: Iterable[int] | None = None) -> TransferResult:
    """See ``DevServerClient.sync``."""
    root = Path(source)
    if not root.is_dir():
        raise InvalidSpecError(f"sync takes a local directory; '{source}' is not one. To copy a file use "
                               f"copy_to (devctl cp).", field="source")
    destination = _remote_dir(destination or default_remote_dir(root))
    targets = list(ranks) if ranks is not None else _ranks(client, name, None, True)
    candidates = sync_candidates(root)
    local_states = {rel: _local_state(root, rel) for rel in candidates}
    result = TransferResult(remote_path=destination)
    for target_rank in targets:
        listing = client.exec(name, ["/bin/sh", "-c", _EXPAND + 'mkdir -p -- "$d" && echo "$d" && '
                                     'exec python3 -c "$2" "$d"', "sh", destination, _REMOTE_LIST],
                              rank=target_rank, stdin=json.dumps(candidates))
        if listing.returncode != 0:
            raise ExecError(f"Cannot list {destination} in DevServer '{name}' (rank {target_rank}): "
                            f"{str(listing.stderr).strip() or 'exit ' + str(listing.returncode)}. sync needs python3 "
                            f"in the image.", result=listing, kind="DevServer", name=name)
        expanded, _, answer = str(listing.stdout).partition("\n")
        remote = json.loads(answer or "{}")
        changed = [rel for rel in candidates if not _same(local_states[rel], remote.get(rel))]
        result.ranks.append(target_rank)
        result.remote_path = expanded
        if not changed:
            continue

        def write(archive: tarfile.TarFile, changed: list[str] = changed) -> None:
            for rel in changed:
                _add_to_archive(archive, root / rel, str(PurePosixPath(rel)))

        result.bytes_sent += _send_archive(client, name, target_rank, expanded, write)
        result.files += len(changed)
    return result


def _add_to_archive(archive: tarfile.TarFile, path: Path, arcname: str) -> tarfile.TarInfo:
    """Add one file, directory or symlink as the pod's user will own it: no local uid or user name travels."""
    info = archive.gettarinfo(str(path), arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isreg():
        with open(path, "rb") as handle:
            archive.addfile(info, handle)
    else:
        archive.addfile(info)
    return info

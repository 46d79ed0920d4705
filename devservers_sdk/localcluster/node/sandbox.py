"""Pod sandboxes without a container runtime: process containment, volumes at their paths, cluster names.

A real kubelet asks a CRI runtime for a *pod sandbox* (network namespace, the pause process) and then for
containers (mount, PID, UTS namespaces built from an image). Here there are no images and no network
namespaces, so this module emulates the parts programs can observe:

* **Containment.** Every container runs under a *shim* (this file, run as a script with ``-I -S`` so it
  starts in a few milliseconds and imports nothing from the project), like containerd's shim: it is the
  session leader of the container's process group, a child subreaper (orphans of the container are
  re-parented to it, not to init), forwards SIGTERM to the main process only (the runtime signals PID 1
  only), and when the main process ends it SIGKILLs every descendant left, as the end of a PID namespace
  would. The shim asks the kernel for ``PR_SET_PDEATHSIG`` so that, if the cluster process is SIGKILLed,
  the shim is signalled and takes its whole tree down: nothing outlives the cluster.
* **Mounts** (isolation mode ``namespaces`` as root, ``user-namespaces`` when unprivileged user namespaces
  are allowed). The shim enters a private mount namespace and a UTS namespace (hostname = the pod's
  hostname), bind-mounts each volume at its real ``mountPath`` (``readOnly`` and ``subPath`` honoured) and
  the cluster hosts file over ``/etc/hosts``. A mount point that does not exist on the host is never
  created on the host: the nearest existing ancestor directory is *shadowed* by a tmpfs that holds bind
  mounts of all its entries plus the new mount point (for ``/`` itself the shadow becomes a new root and
  the shim ``chroot``\\s into it). New entries written directly into a shadowed directory (not into one of
  its bound entries) live in that tmpfs and vanish with the container, as writes to a container's
  root filesystem do.
* **Mounts, fallback** (mode ``none``): no namespaces. Each container gets ``LOCALCLUSTER_ROOT`` (a
  directory holding symlinks ``<root>/<mountPath>`` to the volumes); ``HOME`` and ``workingDir`` under a
  mount path are rewritten into that root.
* **Names.** There is no cluster DNS. The kubelet maintains one hosts file (``state_dir/hosts``) with
  every pod's and Service's names; in the namespace modes it is bind-mounted over ``/etc/hosts``, so any
  resolver that honours ``files`` (glibc ``getaddrinfo``, hence C/C++ code such as PyTorch's TCPStore)
  finds pods. In mode ``none`` a ``sitecustomize.py`` on ``PYTHONPATH`` makes Python's ``socket`` consult
  it (Python programs only). The file is rewritten in place (same inode) so bind mounts see updates.
* **Pod IPs.** Each pod gets its own loopback address from a /16 inside 127.0.0.0/8 (Linux routes all of
  127/8 to ``lo``); servers that bind ``$POD_IP`` or ``0.0.0.0`` are reachable there. All pods share the
  host's network namespace, so two pods binding ``0.0.0.0`` on the same port still collide.

The kubelet-side helpers below (hosts file, IP allocation, file projection, process sweeping) only use the
standard library too; they are called from worker threads when they touch the disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import signal
import stat
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

# Every container start runs this file as the shim, so it imports only what the shim needs: ctypes.util,
# dataclasses, pathlib, ipaddress and random cost more CPU per pod than the shim itself. The kubelet-side
# helpers import theirs where they use them.
if TYPE_CHECKING:
    from pathlib import Path

ISOLATION_NAMESPACES = "namespaces"
ISOLATION_USER_NAMESPACES = "user-namespaces"
ISOLATION_NONE = "none"
ISOLATION_MODES = (ISOLATION_NAMESPACES, ISOLATION_USER_NAMESPACES, ISOLATION_NONE)

SHIM_PATH = os.path.abspath(__file__)

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWUSER = 0x10000000
_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REMOUNT = 0x20
_MS_NOATIME = 0x400
_MS_NODIRATIME = 0x800
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000
_MS_RELATIME = 0x200000
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
# The shim's "my parent died" signal: distinct from SIGTERM, which means "stop the container gracefully".
_PARENT_DEATH_SIGNAL = signal.SIGUSR1


# -- thin libc wrappers --------------------------------------------------------------------------------

_libc: Any = None


def _lib() -> Any:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError:  # not glibc: ask the (slow to import) finder
            from ctypes.util import find_library

            _libc = ctypes.CDLL(find_library("c") or None, use_errno=True)
    return _libc


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _lib().mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source or fstype} on {target}",
    )


def _unshare(flags: int) -> None:
    _check(_lib().unshare(ctypes.c_int(flags)), "unshare")


def _setns(fd: int, nstype: int) -> None:
    _check(_lib().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def set_parent_death_signal(sig: int) -> bool:
    """Ask to be sent ``sig`` when the parent *thread* exits; False where prctl is unavailable."""
    try:
        return _lib().prctl(ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _set_subreaper() -> None:
    with contextlib.suppress(OSError, AttributeError):
        _lib().prctl(ctypes.c_int(_PR_SET_CHILD_SUBREAPER), ctypes.c_ulong(1), 0, 0, 0)


# -- process trees -------------------------------------------------------------------------------------


def _proc_pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _stat_from_state(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` from the third (the state) on; None if ``pid`` is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: fields resume after the last ')'.
    return data[data.rfind(b")") + 2 :].split()


def _stat_number(pid: int, field: int) -> int | None:
    """Field ``field`` (numbered from 1, as in proc(5)) of ``/proc/PID/stat``, a number; None if ``pid`` is gone."""
    fields = _stat_from_state(pid)
    try:
        return int(fields[field - 3]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def _parent_of(pid: int) -> int | None:
    return _stat_number(pid, 4)


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (from /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for pid in _proc_pids():
        parent = _parent_of(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: list[int] = []
    frontier = [root]
    while frontier:
        nxt = []
        for pid in frontier:
            for child in children.get(pid, ()):
                if child not in found:
                    found.append(child)
                    nxt.append(child)
        frontier = nxt
    return found


def mount_namespace_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def pin_mount_namespace(pid: int) -> tuple[str | None, int | None]:
    """The mount namespace of ``pid`` (its ``mnt:[inode]`` name) and a descriptor that keeps it alive, so that
    the name cannot pass to a newer namespace while the descriptor is open; (None, None) if ``pid`` is gone or
    shares our own namespace (sweeping that would kill the host's processes)."""
    try:
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None, None
    name = f"mnt:[{os.fstat(fd).st_ino}]"
    if name == mount_namespace_of(os.getpid()):
        os.close(fd)
        return None, None
    return name, fd


def processes_in_mount_namespace(namespace: str) -> list[int]:
    """Pids whose mount namespace is ``namespace`` (a ``mnt:[inode]`` link text), excluding ourselves."""
    me = os.getpid()
    return [pid for pid in _proc_pids() if pid != me and mount_namespace_of(pid) == namespace]


def kill_pids(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_process_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def process_start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; None if it is gone."""
    return _stat_number(pid, 22)


class ProcessGroup(NamedTuple):
    """A process group the node started (a ``kubectl exec`` session, an exec hook) and must kill with its pod.

    Its pgid alone is not a safe name for it: once the leader is reaped and the group empty, the kernel may
    give that pid to a new process, and a shim or an exec of another pod leads a group of its own. The kernel
    never reuses a pid while a group still holds it, so the leader's start time tells the two apart: a
    process with the pgid's pid but another start time means ours is gone, members and all.
    """

    pgid: int
    leader_start: int | None  # None: the leader was already reaped when the group was recorded

    @classmethod
    def led_by(cls, pid: int) -> ProcessGroup:
        return cls(pid, process_start_time(pid))

    def _pid_taken_by_another(self) -> bool:
        started = process_start_time(self.pgid)
        return started is not None and started != self.leader_start

    def ended(self) -> bool:
        if self._pid_taken_by_another():
            return True
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def kill(self) -> None:
        if self._pid_taken_by_another():
            return
        kill_process_group(self.pgid, signal.SIGKILL)
        # The leader may have moved to a group of its own (setsid in the command).
        kill_pids([self.pgid])


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat_from_state(pid)
    return fields is not None and bool(fields) and fields[0] != b"Z"


# -- the shim (runs as a script inside the container's context) -----------------------------------------


class _RootBuilder:
    """Builds a container's view of the filesystem inside a fresh mount namespace.

    Paths called *view* paths are as the container will see them; ``host()`` maps them to where they are
    reachable right now (differs once ``/`` has been shadowed and before the final chroot).
    """

    def __init__(self, scratch: str) -> None:
        self.scratch = scratch
        self.root = "/"
        self.owned: set[str] = set()
        self.volumes: list[str] = []
        self._count = 0

    def host(self, vpath: str) -> str:
        return vpath if self.root == "/" else os.path.join(self.root, vpath.lstrip("/"))

    def resolve(self, vpath: str) -> str:
        """Resolve symlinks component by component *inside the view* (absolute links stay in the view)."""
        pending = [p for p in vpath.split("/") if p]
        done: list[str] = []
        hops = 0
        while pending:
            comp = pending.pop(0)
            if comp == ".":
                continue
            if comp == "..":
                if done:
                    done.pop()
                continue
            candidate = "/" + "/".join([*done, comp])
            host = self.host(candidate)
            if os.path.islink(host):
                hops += 1
                if hops > 40:
                    raise OSError(errno.ELOOP, f"too many levels of symbolic links: {vpath}")
                target = os.readlink(host)
                if target.startswith("/"):
                    done = []
                pending = [p for p in target.split("/") if p] + pending
                continue
            done.append(comp)
        return "/" + "/".join(done)

    def _safe(self, vdir: str) -> bool:
        if vdir in self.owned:
            return True
        return any(vdir == v or vdir.startswith(v.rstrip("/") + "/") for v in self.volumes)

    def ensure(self, vpath: str, *, is_dir: bool) -> str:
        """Make ``vpath`` exist in the view without writing to the host's disk; return its host path."""
        vpath = self.resolve(vpath)
        parts = [p for p in vpath.split("/") if p]
        cur = "/"
        for index, comp in enumerate(parts):
            nxt = os.path.join(cur, comp)
            if os.path.lexists(self.host(nxt)):
                cur = nxt
                continue
            if not self._safe(cur):
                self._shadow(cur)
            last = index == len(parts) - 1
            if last and not is_dir:
                with open(self.host(nxt), "w"):
                    pass
            else:
                os.mkdir(self.host(nxt), 0o755)
                if cur in self.owned:
                    self.owned.add(nxt)
            cur = nxt
        return self.host(vpath)

    def _shadow(self, vdir: str) -> None:
        host_dir = self.host(vdir)
        self._count += 1
        shadow = os.path.join(self.scratch, f"shadow{self._count}")
        os.mkdir(shadow)
        st = os.stat(host_dir)
        os.chmod(shadow, stat.S_IMODE(st.st_mode))
        with contextlib.suppress(OSError):
            os.chown(shadow, st.st_uid, st.st_gid)
        for entry in os.scandir(host_dir):
            dst = os.path.join(shadow, entry.name)
            try:
                if entry.is_symlink():
                    os.symlink(os.readlink(entry.path), dst)
                elif entry.is_dir(follow_symlinks=False):
                    os.mkdir(dst)
                    _mount(entry.path, dst, None, _MS_BIND | _MS_REC)
                else:
                    with open(dst, "w"):
                        pass
                    _mount(entry.path, dst, None, _MS_BIND)
            except OSError:
                # An entry that cannot be mirrored (a vanished file, an odd inode type) is left out.
                continue
        if vdir == "/":
            self.root = shadow
        else:
            _mount(shadow, host_dir, None, _MS_BIND | _MS_REC)
        self.owned.add(vdir)

    def bind(self, source: str, target: str, *, read_only: bool) -> None:
        is_dir = os.path.isdir(source)
        host_target = self.ensure(target, is_dir=is_dir)
        if os.path.isdir(host_target) != is_dir:
            kind = "directory" if is_dir else "file"
            raise OSError(
                errno.ENOTDIR if not is_dir else errno.EISDIR,
                f"cannot mount {kind} {source} onto {target}: not a {kind}",
            )
        _mount(source, host_target, None, _MS_BIND | _MS_REC)
        if read_only:
            # Remounting must keep the locked flags (nosuid, nodev...) or an unprivileged user gets EPERM.
            flags = os.statvfs(host_target).f_flag
            keep = 0
            for st_flag, ms_flag in (
                (2, _MS_NOSUID),
                (4, _MS_NODEV),
                (8, _MS_NOEXEC),
                (1024, _MS_NOATIME),
                (2048, _MS_NODIRATIME),
                (4096, _MS_RELATIME),
            ):
                if flags & st_flag:
                    keep |= ms_flag
            _mount(None, host_target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | keep)
        self.volumes.append(self.resolve(target))

    def enter(self) -> None:
        if self.root != "/":
            os.chdir(self.root)
            _check(_lib().chroot(b"."), "chroot")
            os.chdir("/")


def _enter_namespaces(spec: dict[str, Any]) -> None:
    mode = spec["isolation"]
    flags = _CLONE_NEWNS | _CLONE_NEWUTS
    if mode == ISOLATION_USER_NAMESPACES:
        uid, gid = os.getuid(), os.getgid()
        _unshare(flags | _CLONE_NEWUSER)
        # Map our own ids to themselves: programs see the same user as outside, and lose the namespace's
        # capabilities on exec like any non-root process.
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    else:
        _unshare(flags)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    hostname = spec.get("hostname") or ""
    if hostname:
        raw = hostname.encode()[:64]
        _check(_lib().sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")
    scratch = spec["scratch"]
    _mount("tmpfs", scratch, "tmpfs", 0, "mode=755")
    builder = _RootBuilder(scratch)
    for mount in sorted(spec.get("mounts", []), key=lambda m: len([p for p in m["target"].split("/") if p])):
        builder.bind(mount["source"], mount["target"], read_only=bool(mount.get("readOnly")))
    if spec.get("hosts"):
        builder.bind(spec["hosts"], "/etc/hosts", read_only=True)
    builder.ensure(spec.get("cwd") or "/", is_dir=True)
    builder.enter()


def _strerror(exc: OSError) -> str:
    """Go's lower-case wording of an errno (``no such file or directory``)."""
    return (exc.strerror or str(exc)).lower()


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _reap_and_kill_all(me: int) -> None:
    """SIGKILL every descendant until none is left, reaping as we go (we are their subreaper)."""
    for _ in range(100):
        left = descendants(me)
        kill_pids(left)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
        if not left:
            return


def _shim(report_fd: int) -> None:
    spec = json.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    # The container must not inherit the report pipe, or the kubelet would wait for its EOF forever.
    os.set_inheritable(report_fd, False)
    report = os.fdopen(report_fd, "w")
    me = os.getpid()
    main_pid = 0

    def parent_died(signum: int, frame: Any) -> None:
        _reap_and_kill_all(me)
        os._exit(137)

    def forward(signum: int, frame: Any) -> None:
        if main_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(main_pid, signum)

    signal.signal(_PARENT_DEATH_SIGNAL, parent_died)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)
    set_parent_death_signal(_PARENT_DEATH_SIGNAL)
    if os.getppid() != spec["parent"]:
        os._exit(137)
    _set_subreaper()
    try:
        if spec["isolation"] != ISOLATION_NONE:
            _enter_namespaces(spec)
    except OSError as exc:
        report.write(f"error {exc}\n")
        report.close()
        os._exit(128)
    errors_r, errors_w = os.pipe()  # close-on-exec: stays empty when exec succeeds
    main_pid = os.fork()
    if main_pid == 0:
        os.close(errors_r)
        argv = spec["argv"]
        cwd = spec.get("cwd") or "/"
        try:
            os.chdir(cwd)
        except OSError as exc:
            os.write(errors_w, f'chdir to cwd ("{cwd}") set in config.json failed: {_strerror(exc)}'.encode())
            os._exit(127)
        try:
            os.execvpe(argv[0], argv, spec["env"])
        except OSError as exc:
            if exc.errno == errno.ENOENT and "/" not in argv[0]:
                why = f'exec: "{argv[0]}": executable file not found in $PATH'
            else:
                why = f'exec: "{argv[0]}": {_strerror(exc)}'
            os.write(errors_w, why.encode())
            os._exit(127)
    os.close(errors_w)
    failure = b""
    while chunk := os.read(errors_r, 4096):
        failure += chunk
    os.close(errors_r)
    if failure:
        report.write("error " + failure.decode(errors="replace") + "\n")
        report.close()
        _reap_and_kill_all(me)
        os._exit(128)
    report.write(f"started {main_pid}\n")
    report.close()
    status = 0
    while True:
        try:
            pid, wstatus = os.wait()
        except ChildProcessError:
            break
        if pid == main_pid:
            status = wstatus
            break
    _reap_and_kill_all(me)
    os._exit(_exit_code(status))


def _join(pid: int, cwd: str, argv: list[str]) -> None:
    """Run ``argv`` in the namespaces and root of process ``pid`` (what ``kubectl exec`` needs)."""
    set_parent_death_signal(signal.SIGKILL)
    try:
        fds = {}
        for ns, flag in (("user", _CLONE_NEWUSER), ("mnt", _CLONE_NEWNS), ("uts", _CLONE_NEWUTS)):
            theirs = os.readlink(f"/proc/{pid}/ns/{ns}")
            if theirs != os.readlink(f"/proc/self/ns/{ns}"):
                fds[flag] = os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY)
        root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
        for flag in (_CLONE_NEWUSER, _CLONE_NEWNS, _CLONE_NEWUTS):
            if flag in fds:
                _setns(fds[flag], flag)
                os.close(fds[flag])
        os.fchdir(root)
        _check(_lib().chroot(b"."), "chroot")
        os.close(root)
        os.chdir(cwd or "/")
    except OSError as exc:
        sys.stderr.write(f"OCI runtime exec failed: exec failed: unable to start container process: {exc}\n")
        os._exit(126)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            why = f'exec: "{argv[0]}": executable file not found in $PATH'
        else:
            why = f'exec: "{argv[0]}": {_strerror(exc)}'
        sys.stderr.write(
            f"OCI runtime exec failed: exec failed: unable to start container process: {why}: unknown\n"
        )
        os._exit(127 if exc.errno == errno.ENOENT else 126)


def _probe(mode: str, scratch: str) -> None:
    """Exit 0 if ``mode``'s namespaces, tmpfs and bind mounts all work here."""
    try:
        _enter_namespaces(
            {
                "isolation": mode,
                "hostname": "probe",
                "scratch": scratch,
                "mounts": [],
                "hosts": None,
                "cwd": "/",
            }
        )
        os.mkdir(os.path.join(scratch, "a"))
        os.mkdir(os.path.join(scratch, "b"))
        _mount(os.path.join(scratch, "a"), os.path.join(scratch, "b"), None, _MS_BIND)
    except OSError as exc:
        sys.stderr.write(f"{exc}\n")
        os._exit(1)
    os._exit(0)


def shim_argv(report_fd: int) -> list[str]:
    return [sys.executable, "-I", "-S", SHIM_PATH, "shim", str(report_fd)]


def join_argv(pid: int, cwd: str) -> list[str]:
    """The prefix that runs a command (appended after it) inside the container whose shim is ``pid``."""
    return [sys.executable, "-I", "-S", SHIM_PATH, "join", str(pid), cwd, "--"]


def probe_argv(mode: str, scratch: Path) -> list[str]:
    return [sys.executable, "-I", "-S", SHIM_PATH, "probe", mode, str(scratch)]


# -- kubelet-side helpers -------------------------------------------------------------------------------


class PodIPAllocator:
    """Loopback addresses for pods, from one /16 of 127.0.0.0/8 chosen per cluster.

    A random /16 (127.2 to 127.254) makes two clusters on one machine (parallel test sessions) unlikely to
    hand out the same address. Released addresses are reused only after the whole range has been cycled,
    so a recreated pod does not inherit a previous pod's address while clients still hold it.
    """

    def __init__(self, cidr: str | None = None) -> None:
        import ipaddress
        import random

        if cidr is None:
            cidr = f"127.{random.randint(2, 254)}.0.0/16"
        self.network = ipaddress.ip_network(cidr)
        self._used: set[str] = set()
        self._next = 1

    @property
    def cidr(self) -> str:
        return str(self.network)

    def allocate(self) -> str:
        size = self.network.num_addresses
        for _ in range(size):
            candidate = str(self.network.network_address + self._next)
            self._next = self._next + 1 if self._next + 1 < size - 1 else 1
            if candidate not in self._used:
                self._used.add(candidate)
                return candidate
        raise RuntimeError(f"pod network {self.network} is exhausted")

    def reserve(self, ip: str) -> bool:
        import ipaddress

        if ip in self._used or ipaddress.ip_address(ip) not in self.network:
            return False
        self._used.add(ip)
        return True

    def release(self, ip: str) -> None:
        self._used.discard(ip)


HOSTS_HEADER = (
    "# Kubernetes-managed hosts file (localcluster: pods and Services of the whole cluster).\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def render_hosts(
    pods: Iterable[dict[str, Any]],
    services: Iterable[tuple[str, str, str]],
    cluster_domain: str = "cluster.local",
) -> str:
    """The hosts file for ``pods`` (objects that have a podIP) and ``services`` ((namespace, name, ip)).

    A pod gets its FQDN line when it sets hostname+subdomain (what StatefulSets do), and a line with its
    name. A Service name maps straight to one ready backing pod: there is no ClusterIP routing here.
    """
    lines = [HOSTS_HEADER]
    for pod in pods:
        meta, spec = pod["metadata"], pod.get("spec", {})
        ip = pod.get("status", {}).get("podIP")
        if not ip:
            continue
        ns = meta.get("namespace", "default")
        hostname = spec.get("hostname") or meta["name"]
        names = []
        if spec.get("hostname") and spec.get("subdomain"):
            base = f"{hostname}.{spec['subdomain']}.{ns}"
            names += [f"{base}.svc.{cluster_domain}", f"{base}.svc", f"{hostname}.{spec['subdomain']}"]
        names.append(meta["name"])
        if hostname != meta["name"]:
            names.append(hostname)
        lines.append(f"{ip}\t{' '.join(names)}\n")
    for ns, name, ip in services:
        lines.append(f"{ip}\t{name}.{ns}.svc.{cluster_domain} {name}.{ns}.svc {name}.{ns}\n")
    return "".join(lines)


def write_in_place(path: Path, content: str) -> None:
    """Replace a file's content keeping its inode, so bind mounts of it see the change.

    Writing first and truncating after means a concurrent reader sees old or new lines, never an empty
    file.
    """
    data = content.encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def project_files(directory: Path, files: dict[str, tuple[bytes, int]], *, dir_mode: int = 0o755) -> None:
    """Make ``directory`` hold exactly ``files`` (relative path -> (content, mode)).

    Each file is replaced by rename so a reader never sees half a file. Files no longer projected are
    removed (a key deleted from a ConfigMap disappears from its volume, as with the real kubelet).
    """
    from pathlib import Path

    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, dir_mode)
    wanted = set()
    for rel, (content, mode) in files.items():
        rel = rel.lstrip("/")
        target = directory / rel
        if directory.resolve() not in target.resolve().parents and target.resolve() != directory.resolve():
            continue
        wanted.add(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(content)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    for dirpath, _dirnames, filenames in os.walk(directory, topdown=False):
        for filename in filenames:
            candidate = Path(dirpath) / filename
            if candidate not in wanted:
                with contextlib.suppress(OSError):
                    candidate.unlink()
        if Path(dirpath) != directory:
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)  # only succeeds when empty


class SandboxPaths(NamedTuple):
    """Where one pod's state lives: ``state_dir/pods/<ns>/<name>-<uid>/``."""

    root: Path

    @classmethod
    def of(cls, state_dir: Path, namespace: str, name: str, uid: str) -> SandboxPaths:
        return cls(state_dir / "pods" / namespace / f"{name}-{uid}")

    def volume(self, name: str) -> Path:
        return self.root / "volumes" / name

    def logs(self, container: str) -> Path:
        return self.root / "logs" / container

    def log_file(self, container: str, restart_count: int) -> Path:
        return self.logs(container) / f"{restart_count}.log"

    def container(self, name: str) -> Path:
        return self.root / "containers" / name

    def scratch(self, name: str) -> Path:
        return self.container(name) / "scratch"

    def fallback_root(self, name: str) -> Path:
        return self.container(name) / "root"


def build_fallback_root(root: Path, mounts: list[dict[str, Any]]) -> None:
    """Mode ``none``: ``root/<mountPath>`` becomes a symlink to each volume's source."""
    root.mkdir(parents=True, exist_ok=True)
    for mount in sorted(mounts, key=lambda m: len(m["target"])):
        link = root / mount["target"].lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.is_symlink() or link.is_file():
                link.unlink()
            else:
                continue
        link.symlink_to(mount["source"])


def map_into_root(path: str, root: Path, mounts: list[dict[str, Any]]) -> str:
    """Mode ``none``: where a container path is reachable from the host (through the mount symlinks)."""
    for mount in sorted(mounts, key=lambda m: len(m["target"]), reverse=True):
        target = mount["target"].rstrip("/") or "/"
        if path == target or path.startswith(target + "/"):
            return str(root / path.lstrip("/"))
    return path


SITECUSTOMIZE = '''\
"""localcluster: resolve cluster names from LOCALCLUSTER_HOSTS (no mount namespace to replace /etc/hosts)."""
import os
import socket

_HOSTS = os.environ.get("LOCALCLUSTER_HOSTS")


def _lookup(name):
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    if not isinstance(name, str) or not _HOSTS:
        return None
    name = name.rstrip(".").lower()
    try:
        with open(_HOSTS) as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) > 1 and name in (n.lower() for n in fields[1:]) and ":" not in fields[0]:
                    return fields[0]
    except OSError:
        return None
    return None


if _HOSTS:
    _getaddrinfo = socket.getaddrinfo
    _gethostbyname = socket.gethostbyname
    _gethostbyname_ex = socket.gethostbyname_ex

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        return _getaddrinfo(_lookup(host) or host, port, family, type, proto, flags)

    def gethostbyname(hostname):
        return _lookup(hostname) or _gethostbyname(hostname)

    def gethostbyname_ex(hostname):
        ip = _lookup(hostname)
        return (hostname, [], [ip]) if ip else _gethostbyname_ex(hostname)

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    if os.environ.get("HOSTNAME"):
        socket.gethostname = lambda: os.environ["HOSTNAME"]


def _chain():
    """Run the sitecustomize this one shadows, if any."""
    import importlib.machinery
    import importlib.util
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_chain()
'''


def install_sitecustomize(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return directory


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "shim":
        _shim(int(sys.argv[2]))
    elif command == "join":
        separator = sys.argv.index("--")
        _join(int(sys.argv[2]), sys.argv[3], sys.argv[separator + 1 :])
    elif command == "probe":
        _probe(sys.argv[2], sys.argv[3])
    else:
        sys.stderr.write("usage: sandbox.py shim FD | join PID CWD -- ARGV... | probe MODE SCRATCH\n")
        sys.exit(2)

"""Build etcd and the Kubernetes control-plane binaries from their pinned Go modules, once, into a cache.

The sources are the modules in ``go/kubernetes`` and ``go/etcd`` (see ``gomod.py``); the module proxy or the
local module cache supplies the code, and ``go`` compiles it. A first build takes many minutes on a small machine,
so the result is kept in a cache directory and reused for as long as the pinned sources and build flags are the
same (their hash names the folder the binaries live in). Nothing partial is ever used: a build happens in a
private folder that is renamed into place only when every binary of it linked, and the cache is locked so that two
processes asking at once build once.

Layout: ``<cache>/kubernetes-<hash>/{kube-apiserver,kube-controller-manager,kube-scheduler}`` and
``<cache>/etcd-<hash>/etcd``, where ``<cache>`` is ``$DEVSERVERS_CONTROL_PLANE_CACHE/<k8s version>`` or
``~/.cache/devservers/control-plane/<k8s version>``.

The binaries are built the way Kubernetes releases are (``hack/lib/version.sh``): ``CGO_ENABLED=0``,
``-trimpath``, and the version stamped into both ``k8s.io/component-base/version`` (what ``/version`` serves) and
``k8s.io/client-go/pkg/version`` (the user agent). Without those, ``kubectl version`` reports
``v0.0.0-master+$Format:%H$`` and version-skew checks misbehave.

Measured on this project's 2-core machine (module cache warm, Go build cache cold): the three kube-* binaries
take 13-20 minutes (about 19 CPU-minutes; 2.7 GB peak memory), etcd under a minute; sizes with ``-s -w``:
kube-apiserver 119 MB, kube-controller-manager 105 MB, kube-scheduler 81 MB, etcd 25 MB. A cached call
returns in well under a second and never runs ``go``.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import logging
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .pins import ETCD_MODULE, KUBERNETES_COMMANDS, KUBERNETES_MODULE, go_directive, required_version

log = logging.getLogger(__name__)

CACHE_ENV = "DEVSERVERS_CONTROL_PLANE_CACHE"
PROGRESS_EVERY_SECONDS = 30.0
_MODULE_FILES = ("go.mod", "go.sum", "tools.go")
_STAMP = ".complete"

Progress = Callable[[str], None]


class ControlPlaneBuildError(RuntimeError):
    """The control-plane binaries could not be built; the message is one line that says what to do."""


class GoToolchainError(ControlPlaneBuildError):
    """``go`` is missing, or older than the pinned modules need."""


@dataclass(frozen=True)
class ControlPlaneBinaries:
    """Paths of the four binaries, and the versions they were built from."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubernetes_version: str
    etcd_version: str

    def path(self, component: str) -> Path:
        """The binary of ``component`` ("etcd", "kube-apiserver", ...)."""
        return {
            "etcd": self.etcd,
            "kube-apiserver": self.kube_apiserver,
            "kube-controller-manager": self.kube_controller_manager,
            "kube-scheduler": self.kube_scheduler,
        }[component]

    def all(self) -> dict[str, Path]:
        return {name: self.path(name) for name in ("etcd", *KUBERNETES_COMMANDS)}


def pinned_kubernetes_version() -> str:
    return required_version((KUBERNETES_MODULE / "go.mod").read_text(), "k8s.io/kubernetes")


def pinned_etcd_version() -> str:
    return required_version((ETCD_MODULE / "go.mod").read_text(), "go.etcd.io/etcd/server/v3")


def default_cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    base = Path(root) if root else Path.home() / ".cache" / "devservers" / "control-plane"
    return base / pinned_kubernetes_version()


@dataclass(frozen=True)
class _Target:
    """One Go module and the commands built from it."""

    name: str
    module_dir: Path
    packages: dict[str, str]  # binary name -> Go package
    ldflags: tuple[str, ...]

    def stamp(self) -> str:
        """Names the sources and flags: a change to either is a different folder, hence a rebuild."""
        digest = hashlib.sha256()
        for file in _MODULE_FILES:
            digest.update(file.encode() + b"\0" + (self.module_dir / file).read_bytes() + b"\0")
        digest.update(repr((sorted(self.packages.items()), self.ldflags, _go_env_for_build(),
                            platform.system(), platform.machine())).encode())
        return digest.hexdigest()[:16]


def _kubernetes_ldflags(version: str) -> tuple[str, ...]:
    major, minor = re.match(r"v(\d+)\.(\d+)", version).groups()  # type: ignore[union-attr]
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean",
              # The module proxy does not carry the release commit; "" beats the "$Format:%H$" placeholder.
              "gitCommit": ""}
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return tuple(flags)


def _targets() -> list[_Target]:
    return [
        _Target("kubernetes", KUBERNETES_MODULE,
                {name: f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_COMMANDS},
                _kubernetes_ldflags(pinned_kubernetes_version())),
        _Target("etcd", ETCD_MODULE, {"etcd": "go.etcd.io/etcd/server/v3"}, ("-s", "-w")),
    ]


def _go_env_for_build() -> dict[str, str]:
    # Upstream releases are static (CGO_ENABLED=0); -mod=readonly so a stale go.sum fails instead of being
    # rewritten; GOWORK=off so a go.work of the user's cannot pull other modules in.
    return {"CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false", "GOWORK": "off"}


def _go_version(go: str, module_dir: Path) -> tuple[int, ...] | None:
    """The version of the toolchain ``go`` runs in ``module_dir`` (GOTOOLCHAIN may switch it); None for devel."""
    try:
        output = subprocess.run([go, "version"], cwd=module_dir, capture_output=True, text=True, check=True,
                                timeout=300).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise GoToolchainError(f"`{go} version` failed ({exc}): check the Go installation") from exc
    if " devel " in output:
        return None
    match = re.search(r"\bgo(\d+)\.(\d+)(?:\.(\d+))?", output)
    if match is None:
        raise GoToolchainError(f"cannot read the Go version from `{go} version`: {output.strip()!r}")
    return tuple(int(part or 0) for part in match.groups())


def check_go(go: str = "go") -> str:
    """The path of a ``go`` new enough for every pinned module, or GoToolchainError in one line."""
    found = shutil.which(go)
    kubernetes = pinned_kubernetes_version()
    need = max((go_directive((t.module_dir / "go.mod").read_text()) for t in _targets()),
               key=lambda text: tuple(int(part) for part in text.split(".")))
    if found is None:
        raise GoToolchainError(
            f"Go is not installed (no `{go}` on PATH): building the real control plane (Kubernetes {kubernetes}) "
            f"needs Go >= {need}; install it (e.g. from go.dev/dl) and retry")
    needed = tuple(int(part) for part in need.split("."))
    for target in _targets():
        have = _go_version(found, target.module_dir)
        if have is not None and have < needed + (0,) * (3 - len(needed)):
            raise GoToolchainError(
                f"Go {'.'.join(map(str, have))} at {found} is older than the {need} that Kubernetes {kubernetes} "
                f"needs: install Go >= {need}, or set GOTOOLCHAIN=auto to let go fetch it")
    return found


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _format_elapsed(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _run_go_build(go: str, target: _Target, binary: str, output: Path, build_log: Path,
                  progress: Progress, build_date: str) -> None:
    ldflags = " ".join((*target.ldflags, *(
        f"-X {package}.buildDate={build_date}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        if target.name == "kubernetes")))
    command = [go, "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", str(output), target.packages[binary]]
    started = time.monotonic()
    with open(build_log, "a") as sink:
        sink.write(f"$ {' '.join(command)}\n")
        sink.flush()
        start_offset = sink.tell()
        process = subprocess.Popen(command, cwd=output.parent.parent, stdout=sink, stderr=subprocess.STDOUT,
                                   env={**os.environ, **_go_env_for_build()})
        try:
            next_report = started + PROGRESS_EVERY_SECONDS
            while process.poll() is None:
                time.sleep(0.5)
                if time.monotonic() >= next_report:
                    next_report += PROGRESS_EVERY_SECONDS
                    lines = _log_lines(build_log, start_offset)
                    last = f", last: {lines[-1]}" if lines else ""
                    progress(f"  still building {binary}: {_format_elapsed(time.monotonic() - started)} elapsed, "
                             f"{len(lines)} packages compiled{last}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if process.returncode != 0:
        lines = _log_lines(build_log, start_offset)
        reason = next((line for line in reversed(lines) if ":" in line), lines[-1] if lines else "no output")
        raise ControlPlaneBuildError(f"`go build` of {binary} failed (exit {process.returncode}): {reason}; "
                                     f"full log: {build_log}")
    progress(f"  built {binary} in {_format_elapsed(time.monotonic() - started)}")


def _log_lines(path: Path, offset: int) -> list[str]:
    with open(path) as source:
        source.seek(offset)
        return [line.strip() for line in source if line.strip()]


def _build_target(go: str, target: _Target, cache_dir: Path, destination: Path, progress: Progress) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f".build-{target.name}-", dir=cache_dir))
    try:
        for file in _MODULE_FILES:
            shutil.copyfile(target.module_dir / file, workdir / file)
        out = workdir / "bin"
        out.mkdir()
        build_log = cache_dir / f"build-{target.name}.log"
        build_log.write_text("")
        build_date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for binary in target.packages:
            progress(f"building {binary} (log: {build_log})")
            _run_go_build(go, target, binary, out / binary, build_log, progress, build_date)
        (out / _STAMP).write_text(target.stamp() + "\n")
        out.rename(destination)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for stale in cache_dir.glob(f"{target.name}-*"):
        if stale != destination:
            shutil.rmtree(stale, ignore_errors=True)


def _complete(folder: Path, target: _Target) -> bool:
    return (folder / _STAMP).is_file() and all((folder / binary).is_file() for binary in target.packages)


def ensure_binaries(*, cache_dir: Path | None = None, progress: Progress | None = None,
                    go: str = "go") -> ControlPlaneBinaries:
    """The control-plane binaries, built first if the cache has none for the pinned sources.

    Args:
        cache_dir: where the binaries are kept (default: ``default_cache_dir()``).
        progress: called with one line per step, and every 30 s during a long compile.
        go: the ``go`` command to build with.

    Returns:
        The paths of etcd, kube-apiserver, kube-controller-manager and kube-scheduler.

    Raises:
        GoToolchainError: a build is needed and ``go`` is missing or too old.
        ControlPlaneBuildError: ``go build`` failed (the message names its log).
    """
    report = progress or log.info
    cache_dir = (cache_dir or default_cache_dir()).expanduser().resolve()
    folders = {}
    for target in _targets():
        folder = cache_dir / f"{target.name}-{target.stamp()}"
        folders[target.name] = folder
        if _complete(folder, target):
            continue
        with _locked(cache_dir):
            if _complete(folder, target):  # another process built it while we waited for the lock
                continue
            go_path = check_go(go)
            started = time.monotonic()
            report(f"building {target.name} into {cache_dir} (first time only; this takes a while)")
            _build_target(go_path, target, cache_dir, folder, report)
            report(f"built {target.name} in {_format_elapsed(time.monotonic() - started)}")
    kubernetes, etcd = folders["kubernetes"], folders["etcd"]
    return ControlPlaneBinaries(
        etcd=etcd / "etcd",
        kube_apiserver=kubernetes / "kube-apiserver",
        kube_controller_manager=kubernetes / "kube-controller-manager",
        kube_scheduler=kubernetes / "kube-scheduler",
        kubernetes_version=pinned_kubernetes_version(),
        etcd_version=pinned_etcd_version(),
    )

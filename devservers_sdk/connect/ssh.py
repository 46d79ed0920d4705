"""SSH to a DevServer without opening a port: ``sshd -i`` inside the pod, over ``pods/exec``.

``ssh NAME.devserver`` (and ``scp``, ``rsync -e ssh``, ``sftp``, VS Code Remote-SSH, which read the same
config) works through a ``Host`` entry whose ``ProxyCommand`` is ``devctl ssh-proxy %h``. The proxy execs a
small script in the pod that runs OpenSSH's server in inetd mode (``sshd -i``: one connection on stdin and
stdout, no listening socket) as the pod's own user, and relays the exec streams to ssh's pipes. So the
cluster needs nothing beyond ``pods/exec``, which a researcher already has for ``devctl shell``, and every
session is an exec session (activity for the idle policy, heartbeats included).

Keys and trust:

* **Client key.** ``~/.ssh/devservers_ed25519`` (made with ``ssh-keygen`` on first use), or the one named.
  Its public half is appended to ``~/.devservers/ssh/authorized_keys`` in the pod's persistent home by the
  script itself on every connection (idempotent), so a new rank or a new home needs no extra step. The
  pod's own ``~/.ssh`` is never touched.
* **Host key.** ``~/.devservers/ssh/ssh_host_ed25519_key`` in the home, made on first use: the same key
  across restarts, one per rank. ``ssh-config`` reads each rank's public key through exec (an
  authenticated channel) and pins it in devctl's own known_hosts file, ``~/.ssh/devservers/known_hosts``;
  ``StrictHostKeyChecking accept-new`` covers a rank not yet running when the config was written.
* **Where sshd is.** ``/usr/sbin`` is often not on a container's ``PATH``; the script looks on ``PATH``,
  then in the usual ``sbin`` directories, and, failing that, exits 127 with one line naming the package.
* **Environment.** sshd starts sessions with a clean environment; the pod's ``PATH``, ``HOME`` and the
  distributed contract (``PET_*``, ``MASTER_*``, ``NCCL_*``...) are passed with sshd's ``SetEnv``, so
  ``torchrun`` in an SSH session sees the same group as ``devctl shell``.

Files this module writes on the user's machine, all under ``~/.ssh`` and only by ``ssh-config``: the key
pair, ``devservers/hosts/<name>.conf`` (one per DevServer), ``devservers/known_hosts``, and, with
``install``, one ``Include`` line at the top of ``~/.ssh/config``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError, DevServerNotFoundError, DevServerNotReadyError, ExecError

if TYPE_CHECKING:
    from .target import ConnectClient

HOST_SUFFIX = ".devserver"
KEY_NAME = "devservers_ed25519"
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd", "/opt/conda/sbin/sshd")
MISSING_SSHD = 127
_ENV_PASSED = ("PATH|HOME|LANG|LC_[A-Z]+|PET_[A-Z_]+|MASTER_ADDR|MASTER_PORT|NNODES|NODE_RANK|NPROC_PER_NODE|"
               "NCCL_[A-Z_]+|CUDA_[A-Z_]+|NVIDIA_[A-Z_]+|LD_LIBRARY_PATH|PYTHONPATH|VIRTUAL_ENV|CONDA_[A-Z_]+|"
               "DEVSERVER_[A-Z_]+|POD_IP")

# $1: the client's public key; $2...: where to look for sshd after PATH.
_SSHD_SCRIPT = r"""
key=$1; shift
d="$HOME/.devservers/ssh"
mkdir -p "$d" && chmod 700 "$d" || exit 1
sshd=$(command -v sshd 2>/dev/null || true)
for candidate in "$@"; do
  [ -z "$sshd" ] && [ -x "$candidate" ] && sshd=$candidate
done
if [ -z "$sshd" ]; then
  echo "devservers: this DevServer's image has no sshd, so SSH cannot work. Install OpenSSH's server in the image (Debian/Ubuntu: apt-get install -y openssh-server; see examples/images/Dockerfile)." >&2
  exit 127
fi
if [ ! -f "$d/ssh_host_ed25519_key" ]; then
  ssh-keygen -q -t ed25519 -N "" -C devserver -f "$d/new_host_key.$$" >/dev/null &&
    mv -f "$d/new_host_key.$$.pub" "$d/ssh_host_ed25519_key.pub" &&
    mv -f "$d/new_host_key.$$" "$d/ssh_host_ed25519_key" || exit 1
fi
touch "$d/authorized_keys" && chmod 600 "$d/authorized_keys"
if [ -n "$key" ] && ! grep -qxF -- "$key" "$d/authorized_keys"; then
  printf '%s\n' "$key" >> "$d/authorized_keys"
fi
if [ "$DEVSERVERS_SSHD_PRINT_HOST_KEY" = 1 ]; then
  cat "$d/ssh_host_ed25519_key.pub"; id -un; exit 0
fi
[ "$(id -u)" = 0 ] && mkdir -p /run/sshd 2>/dev/null
setenv=""
set -f
for pair in $(env | grep -E '^(ENV_PASSED)=' | grep -v '[[:space:]"\\]'); do setenv="$setenv $pair"; done
exec "$sshd" -i -e -f /dev/null -h "$d/ssh_host_ed25519_key" \
  -o "AuthorizedKeysFile=$d/authorized_keys" -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no \
  -o UsePAM=no -o StrictModes=no -o PidFile=none -o LogLevel=ERROR -o "Subsystem=sftp internal-sftp" \
  ${setenv:+-o "SetEnv=${setenv# }"}
""".replace("ENV_PASSED", _ENV_PASSED)


def sshd_command(public_key: str, *, candidates: Sequence[str] = SSHD_CANDIDATES,
                 print_host_key: bool = False) -> list[str]:
    """The command run in the pod: ``sshd -i`` with the home's host key, after installing ``public_key``.

    ``print_host_key``: instead of starting sshd, print the host's public key and the user name (what
    ``ssh-config`` pins and writes as ``User``).
    """
    argv = ["/bin/sh", "-c", _SSHD_SCRIPT, "devservers-sshd", public_key, *candidates]
    return ["env", "DEVSERVERS_SSHD_PRINT_HOST_KEY=1", *argv] if print_host_key else argv


def resolve_host(client: ConnectClient, host: str) -> tuple[str, int]:
    """The DevServer and rank an ssh host name means: ``NAME.devserver`` is rank 0, ``NAME-R.devserver``
    rank R, unless a DevServer is called ``NAME-R`` itself."""
    name = host[:-len(HOST_SUFFIX)] if host.endswith(HOST_SUFFIX) else host
    try:
        client.get(name)
        return name, 0
    except DevServerNotFoundError:
        found = re.fullmatch(r"(.+)-(\d+)", name)
        if found is None:
            raise
        try:
            client.get(found.group(1))
        except DevServerNotFoundError:
            raise DevServerNotFoundError(
                f"No DevServer '{name}' (nor '{found.group(1)}' rank {found.group(2)}) in namespace "
                f"'{client.namespace}'. List yours with: devctl list", kind="DevServer", name=name,
                namespace=client.namespace) from None
        return found.group(1), int(found.group(2))


# -- the user's side ------------------------------------------------------------------------------------

def ssh_home() -> Path:
    return Path.home() / ".ssh"


def default_identity() -> Path:
    return ssh_home() / KEY_NAME


def known_hosts_path() -> Path:
    return ssh_home() / "devservers" / "known_hosts"


def hosts_dir() -> Path:
    return ssh_home() / "devservers" / "hosts"


def ensure_key(identity: str | os.PathLike[str] | None = None) -> Path:
    """The private key to use, made with ``ssh-keygen`` (ed25519, no passphrase) when it does not exist."""
    path = Path(identity).expanduser() if identity else default_identity()
    if path.exists():
        if not Path(f"{path}.pub").exists():
            raise ConfigurationError(f"SSH key {path} has no public half {path}.pub. Recreate it with: "
                                     f"ssh-keygen -y -f {path} > {path}.pub")
        return path
    if identity:
        raise ConfigurationError(f"SSH key {path} does not exist. Name an existing private key, or leave "
                                 f"--identity out to have devctl make {default_identity()}.")
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise ConfigurationError("ssh-keygen is not installed here: install OpenSSH's client (Debian/Ubuntu: "
                                 "apt-get install openssh-client; macOS has it) and run this again.")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "devservers", "-f", str(path)], check=True,
                   stdout=subprocess.DEVNULL, timeout=60)
    return path


def public_key(identity: Path) -> str:
    return Path(f"{identity}.pub").read_text().strip()


@dataclass
class SshConfigResult:
    """What ``ssh_config`` wrote.

    Attributes:
        hosts: every ``Host`` name written, e.g. ``["box.devserver"]`` or ``["ddp.devserver",
            "ddp-0.devserver", "ddp-1.devserver"]``.
        files: the config files written (one per DevServer).
        pinned: the hosts whose key was read from the pod and pinned now.
        identity: the private key the entries use.
        include: the ``Include`` line that makes ssh read them.
        installed: whether that line is now in ``~/.ssh/config``.
        notes: what could not be done (a server not running: its user and keys are learned later).
    """

    hosts: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)
    identity: Path = field(default_factory=default_identity)
    include: str = ""
    installed: bool = False
    notes: list[str] = field(default_factory=list)


def proxy_command(client: ConnectClient, identity: Path) -> str:
    """``python -m devservers_cli [cluster flags] ssh-proxy --identity KEY %h``, quoted for ssh's shell."""
    argv = [sys.executable, "-m", "devservers_cli"]
    info = client.kube.info
    paths = [str(Path(p).resolve()) for p in info.paths]
    if len(paths) == 1:
        argv += ["--kubeconfig", paths[0]]
    elif paths:
        argv = ["env", f"KUBECONFIG={os.pathsep.join(paths)}", *argv]
    if info.context:
        argv += ["--context", info.context]
    argv += ["--namespace", client.namespace, "ssh-proxy", "--identity", str(identity)]
    return shlex.join(argv) + " %h"


def _config_value(value: str) -> str:
    return f'"{value}"' if any(ch.isspace() for ch in value) else value


def ssh_config(client: ConnectClient, names: Sequence[str] | None = None, *,
               identity: str | os.PathLike[str] | None = None, install: bool = False) -> SshConfigResult:
    """See ``DevServerClient.ssh_config``."""
    key = ensure_key(identity)
    result = SshConfigResult(identity=key)
    servers = [client.get(name) for name in names] if names else client.list()
    hosts_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    pins: dict[str, str] = {}
    for server in servers:
        world = server.spec.distributed.world_size if server.spec.distributed is not None else 1
        ranks = [f"{server.name}-{rank}{HOST_SUFFIX}" for rank in range(world)] if world > 1 else []
        hosts = [f"{server.name}{HOST_SUFFIX}", *ranks]
        user = None
        for rank in range(world):
            try:
                probe = client.exec(server.name, sshd_command(public_key(key), print_host_key=True), rank=rank,
                                    timeout=60)
            except DevServerNotReadyError:
                result.notes.append(f"{server.name} rank {rank} is not running: its host key will be trusted on "
                                    f"first use.")
                continue
            if probe.returncode == MISSING_SSHD:
                result.notes.append(str(probe.stderr).strip().removeprefix("devservers: "))
                continue
            if probe.returncode != 0:
                raise ExecError(f"Could not prepare SSH in DevServer '{server.name}' (rank {rank}): "
                                f"{str(probe.stderr).strip() or probe.returncode}.", result=probe,
                                kind="DevServer", name=server.name)
            host_key, _, user_line = str(probe.stdout).partition("\n")
            user = user or user_line.strip() or None
            fields = host_key.split()
            for alias in ([f"{server.name}{HOST_SUFFIX}"] if rank == 0 else []) + (
                    [f"{server.name}-{rank}{HOST_SUFFIX}"] if world > 1 else []):
                pins[alias] = " ".join(fields[:2])
                result.pinned.append(alias)
        lines = [f"# DevServer '{server.name}' in namespace '{client.namespace}', written by devctl ssh-config; "
                 f"run it again to refresh.",
                 f"Host {' '.join(hosts)}",
                 f"    ProxyCommand {proxy_command(client, key)}",
                 f"    IdentityFile {_config_value(str(key))}",
                 "    IdentitiesOnly yes",
                 f"    UserKnownHostsFile {_config_value(str(known_hosts_path()))}",
                 "    StrictHostKeyChecking accept-new",
                 "    ServerAliveInterval 30"]
        if user:
            lines.insert(3, f"    User {user}")
        else:
            result.notes.append(f"{server.name}: user not known yet (not running); ssh uses your local user name "
                                f"until you run ssh-config again.")
        path = hosts_dir() / f"{server.name}.conf"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        result.files.append(path)
        result.hosts.extend(hosts)
    _pin(pins)
    result.include = f"Include {_config_value(str(hosts_dir() / '*.conf'))}"
    if install:
        _install_include(result.include)
    result.installed = _included(result.include)
    return result


def _pin(pins: dict[str, str]) -> None:
    """Replace the known_hosts lines of these hosts with the keys just read from their pods."""
    if not pins:
        return
    path = known_hosts_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    kept = [line for line in (path.read_text().splitlines() if path.exists() else [])
            if line.split(" ", 1)[0] not in pins]
    path.write_text("\n".join([*kept, *(f"{host} {key}" for host, key in sorted(pins.items()))]) + "\n")
    path.chmod(0o600)


def _included(include: str) -> bool:
    config = ssh_home() / "config"
    return config.exists() and include in config.read_text().splitlines()


def _install_include(include: str) -> None:
    """Put the Include line first in ``~/.ssh/config`` (an Include after a ``Host`` block would belong to it)."""
    config = ssh_home() / "config"
    if _included(include):
        return
    ssh_home().mkdir(mode=0o700, exist_ok=True)
    existing = config.read_text() if config.exists() else ""
    config.write_text(f"# Added by devctl ssh-config --install: the DevServers' Host entries.\n{include}\n\n"
                      + existing)
    config.chmod(0o600)


def proxy(client: ConnectClient, host: str, *, identity: str | os.PathLike[str] | None = None) -> int:
    """See ``DevServerClient.ssh_proxy``."""
    name, rank = resolve_host(client, host)
    key = ensure_key(identity)
    return client.shell(name, rank=rank, command=sshd_command(public_key(key)), stdin=sys.stdin,
                        stdout=sys.stdout, activity="ssh")

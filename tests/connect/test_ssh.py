"""SSH to DevServers with the real OpenSSH client and server: ``devctl ssh-config`` writes the entries, ssh
reaches ``sshd -i`` in the pod through ``devctl ssh-proxy`` (exec; no port opened), and ``ssh``, ``scp``,
``rsync -e ssh`` and ``sftp`` work on every rank.

Every test runs with ``HOME`` in a temporary directory and ssh is given the generated config with ``-F``
(OpenSSH finds ``~`` through the password database, not ``HOME``), so the user's own ``~/.ssh`` is never read
or written.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from devservers_sdk.connect.ssh import MISSING_SSHD, sshd_command
from devservers_sdk.contract import ACTIVITY_ANNOTATION, ACTIVITY_SOURCE_ANNOTATION
from tests.cli.devctl_support import make_devctl
from tests.connect.conftest import Server


class Ssh:
    """The real ssh, scp, sftp and rsync, with the config ssh-config wrote under a temporary HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.config = home / ".ssh" / "config"
        self.env = {**os.environ, "HOME": str(home)}

    def run(self, *argv: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), capture_output=True, text=True, env=self.env, timeout=120,
                              input=input_text)

    def ssh(self, host: str, command: str) -> subprocess.CompletedProcess[str]:
        return self.run("ssh", "-F", str(self.config), "-o", "BatchMode=yes", host, command)


def configure(server: Server, home: Path, *names: str) -> tuple[Ssh, str]:
    devctl = make_devctl("process", server.kubeconfig, HOME=str(home))
    result = devctl("ssh-config", *names, "--install")
    assert result.exit_code == 0, result.output
    return Ssh(home), result.stdout


def test_ssh_scp_rsync_and_sftp_reach_the_server(server: Server, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    before = server.client.get(server.name).metadata.annotations.get(ACTIVITY_ANNOTATION)
    ssh, output = configure(server, home, server.name)
    assert "Hosts: box.devserver" in output and "Connect with: ssh box.devserver" in output, output
    key = home / ".ssh" / "devservers_ed25519"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pinned = (home / ".ssh" / "devservers" / "known_hosts").read_text()
    assert pinned.startswith("box.devserver ssh-ed25519 "), pinned
    assert f"Include {home}/.ssh/devservers/hosts/*.conf" in ssh.config.read_text()

    answer = ssh.ssh("box.devserver", "hostname; echo $HOME; command -v python3")
    assert answer.returncode == 0, answer.stderr
    hostname, remote_home, python = answer.stdout.split()
    assert (hostname, remote_home) == ("box-0", "/home/dev")
    assert python.startswith(str(Path(sys.executable).parent)), python  # the pod's PATH came along

    local = tmp_path / "there.bin"
    local.write_bytes(os.urandom(300_000))
    local.chmod(0o750)
    sent = ssh.run("scp", "-F", str(ssh.config), "-p", str(local), "box.devserver:/home/dev/scp-in.bin")
    assert sent.returncode == 0, sent.stderr
    back = tmp_path / "back.bin"
    got = ssh.run("scp", "-F", str(ssh.config), "-p", "box.devserver:/home/dev/scp-in.bin", str(back))
    assert got.returncode == 0, got.stderr
    assert back.read_bytes() == local.read_bytes() and stat.S_IMODE(back.stat().st_mode) == 0o750

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_text("rsync me\n")
    (tree / "link").symlink_to("sub/a.txt")
    rsh = f"ssh -F {ssh.config}"
    pushed = ssh.run("rsync", "-a", "-e", rsh, f"{tree}/", "box.devserver:/home/dev/rsynced/")
    assert pushed.returncode == 0, pushed.stderr
    assert server.client.exec(server.name, "cat /home/dev/rsynced/link").stdout == "rsync me\n"
    pulled = ssh.run("rsync", "-a", "-e", rsh, "box.devserver:/home/dev/rsynced/", f"{tmp_path / 'pulled'}/")
    assert pulled.returncode == 0, pulled.stderr
    assert os.readlink(tmp_path / "pulled" / "link") == "sub/a.txt"

    listing = ssh.run("sftp", "-F", str(ssh.config), "-b", "-", "box.devserver", input_text="ls /home/dev/rsynced\n")
    assert listing.returncode == 0 and "/home/dev/rsynced/sub" in listing.stdout, listing.stdout + listing.stderr

    annotations = server.client.get(server.name).metadata.annotations
    after = annotations.get(ACTIVITY_ANNOTATION)
    assert after is not None and (before is None or after >= before)  # SSH sessions are activity
    assert annotations.get(ACTIVITY_SOURCE_ANNOTATION) == "ssh"  # and describe says so


def test_every_rank_of_a_distributed_server(ddp: Server, tmp_path: Path) -> None:
    ssh, output = configure(ddp, tmp_path, ddp.name)
    assert "Hosts: box.devserver box-0.devserver box-1.devserver" in output, output
    for host, rank in (("box.devserver", 0), ("box-0.devserver", 0), ("box-1.devserver", 1)):
        answer = ssh.ssh(host, "hostname; echo $PET_NODE_RANK")
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.split() == [f"box-{rank}", str(rank)], (host, answer.stdout)
    hosts = (tmp_path / ".ssh" / "devservers" / "known_hosts").read_text().split("\n")
    keys = {line.split()[0]: line.split()[2] for line in hosts if line}
    assert keys["box.devserver"] == keys["box-0.devserver"] != keys["box-1.devserver"]  # one host key per home


def test_an_image_without_sshd_gets_one_clear_error(server: Server) -> None:
    # sshd on neither PATH (this machine's /usr/sbin left out) nor the places looked at after it
    result = server.client.exec(server.name, ["/bin/sh", "-c", 'PATH=/usr/bin:/bin; exec "$@"', "sh",
                                              *sshd_command("ssh-ed25519 AAAA test", candidates=("/no/sshd",))])
    assert result.returncode == MISSING_SSHD
    assert "has no sshd" in str(result.stderr) and "apt-get install -y openssh-server" in str(result.stderr)


def test_devctl_code_runs_vscode_or_says_how(server: Server, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "code-args"
    fake = bin_dir / "code"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    fake.chmod(0o755)
    path = os.pathsep.join([str(bin_dir), os.environ["PATH"]])
    devctl = make_devctl("process", server.kubeconfig, HOME=str(tmp_path), PATH=path)
    result = devctl("code", server.name)
    assert result.exit_code == 0, result.output
    assert record.read_text().split() == ["--remote", "ssh-remote+box.devserver", "/home/dev"]
    assert "Include" in (tmp_path / ".ssh" / "config").read_text()

    without = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "code").exists())
    devctl = make_devctl("process", server.kubeconfig, HOME=str(tmp_path), PATH=without)
    result = devctl("code", server.name, "/home/dev/project")
    assert result.exit_code == 0, result.output
    assert "Remote-SSH: Connect to Host" in result.stdout and "box.devserver" in result.stdout
    assert "/home/dev/project" in result.stdout

"""What only a real process on a real terminal shows: the interactive shell, questions, live progress,
Ctrl-C, shell completion, start-up cost, and what happens without a cluster."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest
from click.shell_completion import ShellComplete
from devctl_support import DEVCTL, Devctl, devctl_env, make_devctl, running
from devservers_cli.main import cli

from devservers_sdk.localcluster.pytest_plugin import wait_for

pytestmark = pytest.mark.slow


def spawn(kubeconfig: str | None, *args: str, **extra: str) -> pexpect.spawn:
    env = devctl_env(kubeconfig, TERM="xterm", **extra)
    return pexpect.spawn(DEVCTL[0], [*DEVCTL[1:], *args], env=env, encoding="utf-8", timeout=60,
                         dimensions=(40, 120))


def test_interactive_shell_through_a_pty(process_devctl: Devctl, kubeconfig_for_test: str) -> None:
    running(process_devctl, "tty")
    child = spawn(kubeconfig_for_test, "shell", "tty")
    child.sendline("tty; echo $((6*7))")
    child.expect(r"/dev/pts/\d+")  # the remote shell has a terminal of its own
    child.expect(r"\b42\b")
    child.sendline("stty size")
    child.expect(r"\b40 120\b")  # the window size was forwarded
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5, child.before


def test_ctrl_c_goes_to_the_remote_command(cluster: Any, process_devctl: Devctl, kubeconfig_for_test: str) -> None:
    if cluster.local is None:
        pytest.skip("finds the remote process among this machine's: needs our node agent, which runs pods here")
    running(process_devctl, "intr")
    child = spawn(kubeconfig_for_test, "shell", "intr")
    child.sendline("sleep 613; echo slept")
    wait_for(lambda: _foreground_on_its_terminal("sleep\x00613"), timeout=60, message="the remote sleep running")
    child.sendintr()  # ^C interrupts the remote sleep, not devctl
    child.sendline("echo still-here")
    child.expect("still-here\r\n")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "slept" not in (child.before or "")


def _foreground_on_its_terminal(cmdline: str) -> bool:
    """Is a process with this command line the foreground process group of its terminal (so ^C reaches it)?"""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().decode(errors="replace").rstrip("\x00") == cmdline:
                fields = (proc / "stat").read_text().rpartition(")")[2].split()
                return fields[2] == fields[5]  # pgrp == tpgid
        except OSError:
            continue
    return False


def test_delete_asks_on_a_terminal(process_devctl: Devctl, kubeconfig_for_test: str) -> None:
    assert process_devctl("create", "precious", "--flavor", "cpu-small").exit_code == 0
    child = spawn(kubeconfig_for_test, "delete", "precious")
    child.expect(r"Delete DevServer 'precious' in namespace '[^']+', with its home volumes\? \[y/N\]: ")
    child.sendline("n")
    child.expect("Aborted!")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert process_devctl("list", "-o", "name").stdout == "devserver.devservers.io/precious\n"

    child = spawn(kubeconfig_for_test, "delete", "precious")
    child.expect(r"\[y/N\]: ")
    child.sendline("y")
    child.expect("DevServer 'precious' deleted.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_wait_progress_is_redrawn_live_on_a_terminal(process_devctl: Devctl, kubeconfig_for_test: str) -> None:
    child = spawn(kubeconfig_for_test, "create", "live", "--flavor", "cpu-small", "--wait")
    child.expect(r"\r\x1b\[K[|/\\-] \[\s*\d+\.\ds\] ")  # a spinner line, redrawn in place
    child.expect("is Running")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_logs_follow_stops_quietly_on_ctrl_c(process_devctl: Devctl, kubeconfig_for_test: str) -> None:
    running(process_devctl, "chatty")
    process = subprocess.Popen([*DEVCTL, "logs", "chatty", "-f"], env=devctl_env(kubeconfig_for_test),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:  # following: it does not end by itself
        if _follows(process):
            break
        time.sleep(0.1)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "Error" not in stderr


def _follows(process: subprocess.Popen[str]) -> bool:
    """Has the process opened its log stream (a TCP connection to the API server)?"""
    fds = Path(f"/proc/{process.pid}/fd")
    try:
        return sum(1 for fd in fds.iterdir() if "socket:" in str(fd.readlink())) > 0
    except OSError:
        return False


# -- completion ------------------------------------------------------------------------------------------

def test_completion_of_devserver_names_through_the_shell_protocol(process_devctl: Devctl,
                                                                  kubeconfig_for_test: str) -> None:
    for name in ("alpha", "alpine", "beta"):
        assert process_devctl("create", name, "--flavor", "cpu-small").exit_code == 0

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        env = devctl_env(kubeconfig_for_test, _DEVCTL_COMPLETE="bash_complete", COMP_WORDS=line,
                         COMP_CWORD=str(len(words) - 1))
        result = subprocess.run(DEVCTL, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and not result.stderr, result
        return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]

    assert complete("devctl describe al") == ["alpha", "alpine"]
    assert complete("devctl shell ") == ["alpha", "alpine", "beta"]
    assert complete("devctl del") == ["delete"]
    assert "cpu-small" in complete("devctl create x --flavor cpu")
    assert complete("devctl --kubeconfig /no/such/file describe al") == []  # fails silently


def test_completion_in_process_honours_the_namespace_flag(process_devctl: Devctl, kubeconfig_for_test: str,
                                                          namespace: str) -> None:
    assert process_devctl("create", "gamma", "--flavor", "cpu-small").exit_code == 0
    completer = ShellComplete(cli, {}, "devctl", "_DEVCTL_COMPLETE")
    found = completer.get_completions(["--kubeconfig", kubeconfig_for_test, "-n", namespace, "start"], "g")
    assert [item.value for item in found] == ["gamma"]
    elsewhere = completer.get_completions(["--kubeconfig", kubeconfig_for_test, "start", "-n", "default"], "g")
    assert "gamma" not in [item.value for item in elsewhere]


# -- start-up and no cluster -----------------------------------------------------------------------------

def test_help_imports_neither_the_sdk_nor_kubernetes() -> None:
    probe = ("import sys\nfrom devservers_cli.main import cli\n"
             "try:\n    cli(['--help'], prog_name='devctl')\nexcept SystemExit:\n    pass\n"
             "heavy = ['devservers_sdk.client', 'devservers_sdk.models', 'pydantic', 'kubernetes', 'yaml']\n"
             "print('LOADED', [m for m in heavy if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", probe], env=devctl_env(None), capture_output=True, text=True,
                            timeout=60)
    assert "LOADED []" in result.stdout, result


def test_every_command_documents_an_example() -> None:
    from click.testing import CliRunner

    commands = [[name] for name in cli.commands if name != "local"] + [["local", sub] for sub in ("up", "down",
                                                                                                    "status")]
    for command in [[], ["local"], *commands]:
        result = CliRunner().invoke(cli, [*command, "--help"], prog_name="devctl")
        assert result.exit_code == 0, result.output
        assert "Example" in result.output and "devctl " in result.output.split("Example", 1)[1], command


@pytest.mark.parametrize("mode", ["runner", "process"])
def test_no_reachable_cluster_names_context_and_server(mode: str, tmp_path: Path) -> None:
    dead = tmp_path / "kubeconfig"
    dead.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "lab", "user": {"token": "x"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}]}))
    devctl = make_devctl(mode, str(dead))
    outcome = devctl("list")
    assert outcome.exit_code == 1 and "Traceback" not in outcome.output, str(outcome)
    assert outcome.stderr.startswith("Error: Cannot reach the cluster of context 'lab' at https://127.0.0.1:9")
    assert "devctl local up" in outcome.stderr

    nothing = make_devctl(mode, str(tmp_path / "missing"))("flavors")
    assert nothing.exit_code == 1 and nothing.stderr.startswith("Error: No kubeconfig found"), str(nothing)
    assert "devctl local up" in nothing.stderr


def test_interactive_shell_needs_real_streams(kubeconfig_for_test: str, process_devctl: Devctl) -> None:
    running(process_devctl, "nofd")
    in_process = make_devctl("runner", kubeconfig_for_test)("shell", "nofd")  # CliRunner's streams have no fd
    assert in_process.exit_code == 2 and "needs real standard input and output" in in_process.stderr
    piped = process_devctl("shell", "nofd", input="echo piped-$((1+1)); exit 4\n")  # no terminal: plain streams
    assert piped.exit_code == 4 and piped.stdout == "piped-2\n", str(piped)

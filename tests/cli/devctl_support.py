"""Running devctl two ways with the same result type: in this process (``CliRunner``) or as a subprocess.

``runner`` invokes the Click group in the test's process; ``process`` runs ``python -m devservers_cli``
exactly as a user's shell would (this checkout on ``PYTHONPATH``). Both take the kubeconfig through
``KUBECONFIG`` and return an ``Outcome``, so one test body checks both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
CLI_ROOT = REPO / "cli"
DEVCTL = [sys.executable, "-m", "devservers_cli"]
SDK_ENV = ("DEVSERVERS_NAMESPACE", "DEVSERVERS_CONTEXT", "DEVSERVERS_OWNER", "DEVSERVERS_STATE_DIR")


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"exit {self.exit_code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def devctl_env(kubeconfig: str | None, **extra: str) -> dict[str, str]:
    """The environment of a devctl subprocess: this checkout importable, no stray DEVSERVERS_* settings."""
    env = {key: value for key, value in os.environ.items() if key not in SDK_ENV}
    paths = [str(CLI_ROOT), str(REPO), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    if kubeconfig is not None:
        env["KUBECONFIG"] = kubeconfig
    else:
        env.pop("KUBECONFIG", None)
    env.update(extra)
    return env


def run_process(args: list[str], *, env: dict[str, str], input: str | None = None,
                timeout: float = 180) -> Outcome:
    result = subprocess.run([*DEVCTL, *args], env=env, input=input, capture_output=True, text=True,
                            timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
    return Outcome(result.returncode, result.stdout, result.stderr)


def run_runner(args: list[str], *, env: dict[str, str], input: str | None = None) -> Outcome:
    from devservers_cli.main import cli

    overrides: dict[str, str | None] = {key: None for key in SDK_ENV}
    overrides.update({key: env[key] for key in ("KUBECONFIG", "DEVSERVERS_STATE_DIR") if key in env})
    if "KUBECONFIG" not in env:
        overrides["KUBECONFIG"] = None
    result = CliRunner().invoke(cli, args, input=input, env=overrides, prog_name="devctl")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a bug in devctl, not an outcome: show its traceback
    return Outcome(result.exit_code, result.stdout, result.stderr)


Devctl = Callable[..., Outcome]


def make_devctl(mode: str, kubeconfig: str | None, **extra: str) -> Devctl:
    env = devctl_env(kubeconfig, **extra)

    def devctl(*args: str, input: str | None = None) -> Outcome:
        if mode == "runner":
            return run_runner(list(args), env=env, input=input)
        return run_process(list(args), env=env, input=input)

    return devctl




def running(devctl: Devctl, name: str, *flags: str) -> Outcome:
    """Create a DevServer and wait until it runs; fail the test with devctl's output otherwise."""
    outcome = devctl("create", name, "--flavor", "cpu-small", *flags, "--wait", "--timeout", "2m")
    assert outcome.exit_code == 0, str(outcome)
    return outcome

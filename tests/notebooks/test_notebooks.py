"""The example notebooks, executed by nbval in a real Jupyter kernel against the platform.

Each notebook runs in ``pytest --nbval-lax`` in a subprocess: every cell must run without error (cells tagged
``raises-exception`` must raise), and the cells marked ``# NBVAL_CHECK_OUTPUT`` must print what the notebook
has stored. The kernel is this interpreter (a kernelspec written to a temporary ``JUPYTER_PATH``), the
cluster is the platform's (``KUBECONFIG``) and the namespace a fresh one (``DEVSERVERS_NAMESPACE``), so the
notebooks themselves name neither.

``03-distributed`` runs PyTorch in the DevServer's pods. An image with PyTorch has it on ``PATH``; the
emulator's pods take ``PATH`` from the cluster process (this one) when they start, so the test puts this
interpreter's ``bin`` first while that notebook runs, as tests/launch does (the real control plane's node
agent has it first from its start; on an outside cluster the image provides torch and this changes nothing).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.platform_fixture import Platform

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "examples" / "notebooks").glob("0[123]*.ipynb"))
RUN_TORCH_IN_PODS = {"03-distributed.ipynb"}
KERNEL_NAME = "devservers-test"
# IPython prints a UsageError (how the magics report every SDK error) as stderr text, with no error message
# on iopub, and nbval fails a cell only on such a message: a failed `%%devserver launch` cell passed, and the
# next cell failed for want of its value. The test kernel reports a UsageError as an error too.
USAGE_ERRORS_FAIL = (
    "from IPython.core.error import UsageError; "
    "get_ipython().set_custom_exc((UsageError,), "
    "lambda shell, etype, value, tb, tb_offset=None: shell._showtraceback(etype, value, [f'UsageError: {value}']))"
)


def kernelspec_path(root: Path) -> str:
    """A ``JUPYTER_PATH`` whose only kernel runs ipykernel with this very interpreter (and so this venv), a
    UsageError failing its cell (``USAGE_ERRORS_FAIL``)."""
    kernel = root / "kernels" / KERNEL_NAME
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                         f"--IPKernelApp.exec_lines={json.dumps([USAGE_ERRORS_FAIL])}"],
                "display_name": "devservers tests",
                "language": "python",
            }
        )
    )
    return str(root)


def kernel_env(platform: Platform, namespace: str, tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "KUBECONFIG": platform.kubeconfig,
        "DEVSERVERS_NAMESPACE": namespace,
        "JUPYTER_PATH": kernelspec_path(tmp_path / "jupyter"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "magics"), str(REPO)]),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    for variable in ("DEVSERVERS_CONTEXT", "DEVSERVERS_OWNER"):
        env.pop(variable, None)
    return env


def test_the_notebooks_are_found() -> None:
    assert [path.name for path in NOTEBOOKS] == [
        "01-quickstart.ipynb",
        "02-widgets.ipynb",
        "03-distributed.ipynb",
    ]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_under_nbval(
    notebook: Path, platform: Platform, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if notebook.name in RUN_TORCH_IN_PODS:
        pods_path = [str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]
        monkeypatch.setenv("PATH", os.pathsep.join(pods_path))
    env = kernel_env(platform, namespace, tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-kernel-name",
            KERNEL_NAME,
            "--nbval-cell-timeout",
            "300",
            "-p",
            "no:cacheprovider",
            "-q",
            "-o",
            "addopts=",
            "--timeout",
            "600",
            str(notebook),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=850,
    )
    assert result.returncode == 0, (
        f"nbval failed for {notebook.name}:\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
    )
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.timeout(300)
def test_a_magic_usage_error_fails_its_cell_under_nbval(tmp_path: Path) -> None:
    """Without USAGE_ERRORS_FAIL this notebook passes nbval: the error is only text on stderr."""
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext devservers_magics"),
        nbformat.v4.new_code_cell("%devserver frobnicate"),
    ])
    path = tmp_path / "usage_error.ipynb"
    nbformat.write(notebook, path)
    env = {**os.environ, "JUPYTER_PATH": kernelspec_path(tmp_path / "jupyter"),
           "PYTHONPATH": os.pathsep.join([str(REPO / "magics"), str(REPO)])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-kernel-name", KERNEL_NAME, "-p", "no:cacheprovider",
         "-q", "-o", "addopts=", str(path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=250,
    )
    assert result.returncode == 1, result.stdout[-3000:]
    assert "Unknown verb 'frobnicate'" in result.stdout and "1 failed, 1 passed" in result.stdout, result.stdout[-3000:]


@pytest.mark.timeout(300)
def test_interrupting_the_kernel_stops_the_remote_cell(
    platform: Platform, namespace: str, tmp_path: Path
) -> None:
    """Jupyter's Interrupt (SIGINT to the kernel) while a %%devserver run cell waits on a silent process."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    from devservers_sdk.client import DevServerClient

    env = kernel_env(platform, namespace, tmp_path)
    with DevServerClient(namespace=namespace, kubeconfig=platform.kubeconfig) as client:
        client.create("interrupted", flavor="cpu-small", wait=True, timeout=90)
        specs = KernelSpecManager(kernel_dirs=[str(Path(env["JUPYTER_PATH"]) / "kernels")])
        manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
        manager.start_kernel(env=env, cwd=str(tmp_path))
        kernel = manager.client()
        kernel.start_channels()
        try:
            kernel.wait_for_ready(timeout=60)
            kernel.execute_interactive("%load_ext devservers_magics", timeout=60)
            streamed: list[str] = []
            message_id = kernel.execute(
                "%%devserver run interrupted\nimport os, time\n"
                "print(os.getpid(), flush=True)\ntime.sleep(120)\n"
            )
            error: dict[str, str] = {}
            interrupted_at = None
            while True:
                message = kernel.get_iopub_msg(timeout=60)
                if message["parent_header"].get("msg_id") != message_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    streamed.append(content["text"])
                    if interrupted_at is None and content["name"] == "stdout":
                        manager.interrupt_kernel()
                        interrupted_at = time.monotonic()
                elif kind == "error":
                    error = content
                elif kind == "status" and content["execution_state"] == "idle":
                    break
            assert interrupted_at is not None and time.monotonic() - interrupted_at < 30
            assert error.get("ename") == "KeyboardInterrupt", error
            assert "Interrupted: the cell's remote process on interrupted (rank 0) was stopped." in "".join(
                streamed
            )
            pid = int(re.findall(r"\d+", "".join(streamed))[0])  # -u may send "1664" and "\n" apart
            deadline = time.monotonic() + 15
            while client.exec("interrupted", f"kill -0 {pid} 2>/dev/null && echo alive").stdout.strip():
                assert time.monotonic() < deadline, f"remote process {pid} still alive after the interrupt"
                time.sleep(0.2)
            reply = kernel.execute_interactive(
                "%%devserver run interrupted\nprint('still usable')\n", timeout=60
            )
            assert reply["content"]["status"] == "ok"
        finally:
            kernel.stop_channels()
            manager.shutdown_kernel(now=True)

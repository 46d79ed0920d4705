"""``devctl jupyter`` and ``client.jupyter``: JupyterLab started in the DevServer, reached through a forward;
the printed URL's token is required, and a kernel started through it runs code. (That a busy kernel keeps
the server from an idle stop, and an idle one does not, is in ``tests/operator/test_operator_jupyter_idle.py``,
where the operator's idle clock is scaled.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request

from devservers_sdk.connect.jupyter import MISSING_JUPYTER, jupyter_command
from tests.connect.conftest import Server
from tests.connect.jupyter_kernel import Kernel, api
from tests.magics.magic_support import the_ipython_shell


def status_code(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0  # nothing listens (the forward is closed)


def test_devctl_jupyter_serves_lab_with_a_token_and_runs_a_kernel(server: Server) -> None:
    env = {**os.environ, "KUBECONFIG": server.kubeconfig}
    process = subprocess.Popen([sys.executable, "-m", "devservers_cli", "jupyter", server.name, "--no-browser"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "JupyterLab in box (rank 0, root /home/dev): started." in first, (
            first, process.wait(30), process.stderr.read())
        line = process.stdout.readline()
        found = re.fullmatch(r"Open: (http://127\.0\.0\.1:\d+)/lab\?token=(\w+)\n", line)
        assert found, line
        base, token = found.groups()
        assert status_code(f"{base}/api/status?token={token}") == 200
        assert status_code(f"{base}/api/status") == 403
        assert status_code(f"{base}/api/status?token=wrong") == 403
        kernel = Kernel(base, token)
        assert kernel.run("import os; print(6 * 7, os.getcwd())") == "42 /home/dev\n"
        kernel.disconnect()
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # Ctrl-C ended the forward only: a second run finds the same server and its kernel.
    again = server.client.jupyter(server.name)
    assert again.reused and again.token == token
    with server.client.port_forward(server.name, again.port) as address:
        assert [k["id"] for k in api(address.url, again.token, "/api/kernels")] == [kernel.id]
    stop = subprocess.run([sys.executable, "-m", "devservers_cli", "jupyter", server.name, "--stop"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stdout + stop.stderr
    assert not server.client.jupyter_stop(server.name)  # nothing left to stop


def test_an_image_without_jupyterlab_says_what_to_install(server: Server) -> None:
    # The machine's own Python (outside this virtualenv) has no JupyterLab: as an image without it.
    result = server.client.exec(server.name, ["env", "PATH=/usr/bin:/bin", *jupyter_command("start")])
    assert result.returncode == MISSING_JUPYTER
    assert "JupyterLab is not installed in this DevServer's image" in str(result.stderr)
    assert "pip install 'jupyterlab>=4.2,<5'" in str(result.stderr)


def test_the_magic_shows_a_working_link(server: Server) -> None:
    shell = the_ipython_shell()
    shell.run_line_magic("config", f"DevServerMagics.kubeconfig = {server.kubeconfig!r}")
    try:
        link = shell.run_line_magic("devserver", f"jupyter {server.name}")
        found = re.search(r"(http://127\.0\.0\.1:\d+)/lab\?token=(\w+)", link.url)
        assert found and f'href="{link.url}"' in link._repr_html_()
        base, token = found.groups()
        assert status_code(f"{base}/api/status?token={token}") == 200  # the forward lives in this kernel
        again = shell.run_line_magic("devserver", f"jupyter {server.name}")
        assert again.url == link.url  # the same server and the same forward
        shell.run_line_magic("devserver", f"jupyter {server.name} --stop")
        assert status_code(f"{base}/api/status?token={token}") == 0  # the forward went with it
    finally:
        shell.run_line_magic("config", "DevServerMagics.kubeconfig = None")

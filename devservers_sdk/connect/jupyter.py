"""JupyterLab in a DevServer: start it (or find the one running), stop it, and the URL to open.

The server runs in the pod, on the pod's own Python, with the home as its root directory and a generated
token; nothing listens outside the pod but a port that only ``pods/portforward`` reaches. State lives in
the persistent home, ``~/.devservers/jupyter/server.json`` (port, token, pid), so a second ``devctl
jupyter`` (or the dashboard's button) finds the running server instead of starting another, and the
operator's idle probe knows where to ask Jupyter whether a kernel is busy (``/api/kernels``, as the
Kubeflow notebook culler does).

The in-pod part is one Python script run over exec: it checks the recorded server still answers
``/api/status`` with its token, else starts ``python3 -m jupyter lab`` in a session of its own (so it
outlives the exec) on a free port (or the one asked for), waits until it answers, and prints the state as
JSON. An image without JupyterLab gets exit code 127 and a line naming what to install.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ExecError

if TYPE_CHECKING:
    from .portforward import LocalAddress
    from .target import ConnectClient

STATE_PATH = "~/.devservers/jupyter/server.json"
MISSING_JUPYTER = 127

_SCRIPT = r"""
import json, os, secrets, signal, socket, subprocess, sys, time, urllib.request
action, wanted = sys.argv[1], int(sys.argv[2])
home = os.path.expanduser("~")
state_dir = os.path.join(home, ".devservers", "jupyter")
state_path = os.path.join(state_dir, "server.json")

def load():
    try:
        with open(state_path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def answers(state, timeout=3):
    try:
        url = "http://127.0.0.1:%d/api/status?token=%s" % (state["port"], state["token"])
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False

state = load()
if action == "stop":
    if state:
        try:
            os.killpg(state["pid"], signal.SIGTERM)
        except (OSError, KeyError):
            pass
        os.unlink(state_path)
    print(json.dumps({"stopped": bool(state)}))
    sys.exit(0)
if state and answers(state):
    state["reused"] = True
    print(json.dumps(state))
    sys.exit(0)
try:
    import jupyterlab  # noqa: F401
except ImportError:
    sys.stderr.write("devservers: JupyterLab is not installed in this DevServer's image. Install it in the image "
                     "(pip install 'jupyterlab>=4.2,<5'; see examples/images/Dockerfile).\n")
    sys.exit(127)
port = wanted
if not port:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
token = secrets.token_hex(24)
os.makedirs(state_dir, mode=0o700, exist_ok=True)
log = open(os.path.join(state_dir, "server.log"), "ab")
process = subprocess.Popen(
    [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=0.0.0.0",
     "--ServerApp.port=%d" % port, "--ServerApp.port_retries=0", "--IdentityProvider.token=" + token,
     "--ServerApp.root_dir=" + home, "--ServerApp.allow_remote_access=True",
     "--ServerApp.allow_root=True"],
    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd=home)
state = {"pid": process.pid, "port": port, "token": token, "root": home, "reused": False}
deadline = time.monotonic() + 120
while not answers(state, timeout=2):
    if process.poll() is not None or time.monotonic() > deadline:
        with open(os.path.join(state_dir, "server.log"), "rb") as f:
            tail = f.read()[-1500:].decode("utf-8", "replace")
        sys.stderr.write("devservers: JupyterLab did not start (exit %s). Its log ends:\n%s\n" % (process.poll(), tail))
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        sys.exit(1)
    time.sleep(0.3)
with open(state_path + ".new", "w") as f:
    json.dump(state, f)
os.chmod(state_path + ".new", 0o600)
os.replace(state_path + ".new", state_path)
print(json.dumps(state))
"""


@dataclass(frozen=True)
class JupyterServer:
    """A JupyterLab running in a DevServer.

    Attributes:
        name, rank: where it runs.
        port: its port in the pod (forward it with ``client.port_forward(name, port, rank=rank)``).
        token: the token every request needs.
        root: its root directory (the home).
        reused: it was already running (this call started nothing).
    """

    name: str
    rank: int
    port: int
    token: str
    root: str
    reused: bool

    def url(self, address: LocalAddress, path: str = "lab") -> str:
        """The URL to open through a forward listening at ``address``, token included."""
        return f"{address.url}/{path.lstrip('/')}?token={self.token}"


def jupyter_command(action: str, port: int = 0, *, python: str = "python3") -> list[str]:
    """The argv run in the pod: ``python3 -c <script> start|stop PORT`` (JupyterLab runs on that Python)."""
    return [python, "-c", _SCRIPT, action, str(port)]


def start(client: ConnectClient, name: str, *, rank: int = 0, port: int | None = None,
          python: str = "python3") -> JupyterServer:
    """See ``DevServerClient.jupyter``."""
    result = client.exec(name, jupyter_command("start", port or 0, python=python), rank=rank, timeout=180)
    if result.returncode != 0:
        why = str(result.stderr).strip().removeprefix("devservers: ") or f"exit code {result.returncode}"
        raise ExecError(f"Cannot start JupyterLab in DevServer '{name}' (rank {rank}): {why}", result=result,
                        kind="DevServer", name=name)
    state = json.loads(str(result.stdout).strip().splitlines()[-1])
    return JupyterServer(name, rank, int(state["port"]), str(state["token"]), str(state["root"]),
                         bool(state.get("reused")))


def stop(client: ConnectClient, name: str, *, rank: int = 0) -> bool:
    """See ``DevServerClient.jupyter_stop``."""
    result = client.exec(name, jupyter_command("stop"), rank=rank, timeout=60, check=True)
    return bool(json.loads(str(result.stdout).strip().splitlines()[-1])["stopped"])

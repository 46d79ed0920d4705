"""`%load_ext devservers_magics`: what it registers and leaves unimported, its help and its configuration.

These need no cluster. Load time itself is measured by ``bench/magics.py``; here the test is what makes it
fast: nothing heavy is imported and nothing is contacted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

REPO = Path(__file__).resolve().parents[2]
VERBS = [
    "flavors",
    "list",
    "create",
    "describe",
    "delete",
    "extend",
    "update",
    "stop",
    "start",
    "wait",
    "logs",
    "ui",
    "run",
    "shell",
]


def fresh_python(code: str, **env: str) -> Any:
    """Run ``code`` in a new interpreter (nothing imported yet) and return the JSON it prints last."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "magics"), str(REPO)]), **env}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


LOAD = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
before = set(sys.modules)
shell.run_line_magic("load_ext", "devservers_magics")
new = sorted(set(sys.modules) - before)
print(json.dumps({"new": new, "line": sorted(shell.magics_manager.magics["line"]),
                  "cell": sorted(shell.magics_manager.magics["cell"])}))
"""


def test_loading_imports_neither_the_sdk_nor_kubernetes_nor_widgets() -> None:
    loaded = fresh_python(LOAD, KUBECONFIG="/nonexistent/kubeconfig")
    heavy = [
        name
        for name in loaded["new"]
        if name.split(".")[0]
        in ("devservers_sdk", "kubernetes", "ipywidgets", "pydantic", "urllib3", "websocket", "yaml")
    ]
    assert heavy == []
    assert {"devservers_magics", "devservers_magics.magics", "devservers_magics.tables"} <= set(loaded["new"])


def test_loading_registers_the_devserver_magic_only() -> None:
    baseline = fresh_python(LOAD.replace('shell.run_line_magic("load_ext", "devservers_magics")', ""))
    loaded = fresh_python(LOAD)
    assert set(loaded["line"]) - set(baseline["line"]) == {"devserver"}
    assert set(loaded["cell"]) - set(baseline["cell"]) == {"devserver"}


def test_traitlets_come_from_the_shells_configuration() -> None:
    code = """
import json
from traitlets.config import Config
from IPython.core.interactiveshell import InteractiveShell
config = Config()
config.DevServerMagics.namespace = "ml"
config.DevServerMagics.python = "python3.12"
shell = InteractiveShell.instance(config=config)
shell.run_line_magic("load_ext", "devservers_magics")
magics = shell.magics_manager.registry["DevServerMagics"]
shell.run_line_magic("config", "DevServerMagics.context = 'prod'")
print(json.dumps([magics.namespace, magics.python, magics.context, magics.kubeconfig, magics.wait_timeout]))
"""
    assert fresh_python(code) == ["ml", "python3.12", "prod", None, 300.0]


def test_the_help_documents_every_verb_with_its_options_and_an_example(ipython: Any) -> None:
    doc = ipython.find_magic("devserver").__doc__
    info = ipython.object_inspect_text("%devserver")
    for verb in VERBS:
        assert f"--- {verb} " in doc, verb
        assert f"%devserver {verb}" in doc
    section = doc.split("--- create ")[1].split("\n--- ")[0]
    for option in (
        "--flavor FLAVOR",
        "--image IMAGE",
        "--time DURATION",
        "--idle-timeout DURATION",
        "--distributed",
        "--world-size",
        "--nprocs-per-node",
        "--wait",
        "-n NAMESPACE",
    ):
        assert option in section, option
    assert "Example: server = %devserver create mydev --flavor cpu-small" in section
    assert "%%devserver run mydev" in doc and "%config DevServerMagics.namespace" in doc
    assert "--- run " in info  # what %devserver? shows


def test_configuration_errors_are_usage_errors(ipython: Any, tmp_path: Path) -> None:
    ipython.run_line_magic("config", f"DevServerMagics.kubeconfig = {str(tmp_path / 'missing')!r}")
    try:
        with pytest.raises(UsageError) as caught:
            ipython.run_line_magic("devserver", "list")
        assert type(caught.value) is UsageError and "missing" in str(caught.value)
    finally:
        ipython.run_line_magic("config", "DevServerMagics.kubeconfig = None")


def test_unloading_removes_the_magic(ipython: Any) -> None:
    from devservers_sdk.models import DevServer

    html = ipython.display_formatter.formatters["text/html"]
    assert html.lookup_by_type(DevServer) is not None
    ipython.run_line_magic("unload_ext", "devservers_magics")
    try:
        assert ipython.find_magic("devserver") is None
        with pytest.raises(KeyError):
            html.lookup_by_type(DevServer)
    finally:
        ipython.run_line_magic("load_ext", "devservers_magics")
    assert ipython.find_magic("devserver") is not None
    assert html.lookup_by_type(DevServer) is not None

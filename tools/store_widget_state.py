"""Run examples/notebooks/02-widgets.ipynb on a local cluster of its own and store it with its widget state.

Why: a notebook saved without ``metadata.widgets`` shows nothing where its form and list were, on GitHub and in
nbviewer, which draw widgets from that saved state without a kernel. nbclient stores it when it executes a
notebook (``store_widget_state``); this runs the notebook the way a reader would, against ``devctl local up`` in a
temporary state directory (never the user's), and writes the executed notebook back. The outputs nbval checks
(cells marked ``NBVAL_CHECK_OUTPUT``) come out of the same run.

    .venv/bin/python tools/store_widget_state.py [examples/notebooks/02-widgets.ipynb]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
DEVCTL = [sys.executable, "-m", "devservers_cli"]
VIEW = "application/vnd.jupyter.widget-view+json"


def shown_models(notebook: nbformat.NotebookNode, models: dict[str, Any]) -> dict[str, Any]:
    """The models the displayed widgets need (their views' models and all they reference): the kernel also
    reported every widget the notebook created and closed, which nobody can see."""
    wanted = [output["data"][VIEW]["model_id"] for cell in notebook.cells for output in cell.get("outputs", [])
              if VIEW in output.get("data", {})]
    kept: dict[str, Any] = {}
    while wanted:
        model_id = wanted.pop()
        if model_id in kept or model_id not in models:
            continue
        kept[model_id] = models[model_id]
        wanted.extend(re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(models[model_id])))
    return kept


def main(argv: list[str]) -> int:
    notebook_path = Path(argv[0]) if argv else REPO / "examples" / "notebooks" / "02-widgets.ipynb"
    with tempfile.TemporaryDirectory(prefix="widget-state-") as scratch:
        env = {**os.environ, "DEVSERVERS_STATE_DIR": f"{scratch}/state", "KUBECONFIG": f"{scratch}/kubeconfig"}
        subprocess.run([*DEVCTL, "local", "up"], env=env, check=True)
        try:
            notebook = nbformat.read(notebook_path, as_version=4)
            os.environ.update({key: env[key] for key in ("DEVSERVERS_STATE_DIR", "KUBECONFIG")})
            NotebookClient(notebook, timeout=600, kernel_name="python3", store_widget_state=True,
                           resources={"metadata": {"path": str(notebook_path.parent)}}).execute()
            state = notebook.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
            state["state"] = shown_models(notebook, state.get("state") or {})
            if not state.get("state"):
                print("the run stored no widget state; nothing written", file=sys.stderr)
                return 1
            nbformat.write(notebook, notebook_path)
            print(f"wrote {notebook_path} with the state of {len(state['state'])} widget models")
        finally:
            subprocess.run([*DEVCTL, "local", "down", "--purge", "--yes"], env=env, check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

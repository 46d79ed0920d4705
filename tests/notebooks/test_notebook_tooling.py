"""What a reader needs to open and run the example notebooks, and what GitHub and nbviewer need to show them
(issue 14): the ``jupyter`` extra, and ``02-widgets`` stored with its widget state."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_the_jupyter_extra_installs_what_the_notebooks_need_and_dev_pulls_it_in() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"jupyterlab", "ipykernel", "nbconvert", "nbclient"} <= requirement_names(extras["jupyter"])
    assert "devservers[cli,notebooks]" in extras["jupyter"]  # the magics, and devctl for `devctl local up`
    assert any(item.startswith("devservers[") and "jupyter" in item for item in extras["dev"])


def test_nbconvert_executes_a_notebook_with_the_magics(tmp_path: Path) -> None:
    """The README's `jupyter nbconvert --execute` line, on a notebook that needs no cluster."""
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext devservers_magics\nimport devservers_magics\nprint('magics', 'loaded')"),
    ])
    path = tmp_path / "tiny.ipynb"
    nbformat.write(notebook, path)
    jupyter = Path(sys.executable).with_name("jupyter")
    result = subprocess.run([str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--stdout", str(path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [cell] = nbformat.reads(result.stdout, as_version=4).cells
    assert cell.outputs[0]["text"] == "magics loaded\n"


def test_02_widgets_is_stored_with_the_state_its_forms_are_drawn_from() -> None:
    notebook = json.loads((REPO / "examples" / "notebooks" / "02-widgets.ipynb").read_text())
    models = notebook["metadata"]["widgets"][STATE]["state"]
    views = [output["data"][VIEW]["model_id"] for cell in notebook["cells"] for output in cell.get("outputs", [])
             if VIEW in output.get("data", {})]
    assert len(views) == 2, views  # DevServerUI(client), and %devserver ui at the end
    for model_id in views:
        assert model_id in models
    # Every model a drawn widget references is stored too, or the renderer shows an error in its place.
    for model in models.values():
        for referenced in re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(model)):
            assert referenced in models, referenced
    buttons = {model["state"].get("description") for model in models.values()
               if model["model_name"] == "ButtonModel"}
    assert "Create" in buttons, buttons

"""A kubeconfig that is no kubeconfig: one line naming the file and the fix, from every command (issue 14).

No cluster is needed: each case fails while reading the file, before any request.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from devctl_support import make_devctl

NO_CONTEXT = yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [],
                             "contexts": [{"name": "somewhere", "context": {"cluster": "x", "user": "y"}}]})
CASES = {
    "bad YAML": (b"apiVersion: v1\nclusters: [\n  - name: x\n    cluster: {server: \n", "is not valid YAML ("),
    "binary bytes": (bytes(range(256)) * 4, "is not text (it holds binary data)"),
    "plain text": (b"remember to ask Bob for the cluster\n", "is not a kubeconfig: it holds plain text"),
    "no current context": (NO_CONTEXT.encode(), "selects no context. Select one with: kubectl config use-context"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("mode", ["runner", "process"])
@pytest.mark.parametrize("command", [("list",), ("describe", "mydev"), ("flavors",)])
def test_each_kubeconfig_problem_is_one_line_naming_the_file_and_the_fix(
    case: str, mode: str, command: tuple[str, ...], tmp_path: Path
) -> None:
    content, said = CASES[case]
    path = tmp_path / "config"
    path.write_bytes(content)
    outcome = make_devctl(mode, str(path))(*command)
    assert outcome.exit_code == 1, str(outcome)
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), str(outcome)
    assert str(path) in lines[0] and said in lines[0], str(outcome)
    assert lines[0].endswith("devctl local up"), str(outcome)  # the repair devctl offers
    assert "unexpected" not in lines[0] and "context=" not in lines[0] and "Traceback" not in outcome.output

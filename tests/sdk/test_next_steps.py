"""A next step is one value, said in the syntax of the front end that shows it: devctl, the magic, Python.

Whether every devctl line the SDK and the operator write parses through devctl's own commands is devctl's
question: ``tests/cli/test_hints.py``.
"""

from __future__ import annotations

from devservers_sdk.errors import DevServerNotFoundError
from devservers_sdk.next_steps import NextStep


def test_a_next_step_in_each_front_ends_syntax() -> None:
    step = NextStep("extend", "mydev", {"time": "2h"})
    assert step.devctl() == "devctl extend mydev --time 2h"
    assert step.magic() == "%devserver extend mydev --time 2h"
    assert step.python() == "client.extend('mydev', by='2h')"
    assert NextStep("local up").magic() == "devctl local up"  # a terminal step stays a shell command
    error = DevServerNotFoundError("DevServer 'x' not found.", next_step=NextStep("list"), lead="List yours with")
    assert str(error) == "DevServer 'x' not found. List yours with: devctl list"
    assert error.render("magic") == "DevServer 'x' not found. List yours with: %devserver list"
    assert error.render("python") == "DevServer 'x' not found. List yours with: client.list()"

"""What to do next, as data: each front end writes it in its own syntax.

Why: the SDK's messages used to carry the next step as text, and a text can only be in one syntax. devctl
then printed Python wording (``Pass context=...``, ``Pass a larger timeout=``), and a hint in devctl's
syntax pointed nowhere (the ExpiringSoon condition said ``devctl extend NAME --by 2h``; extend has no
``--by``). A ``NextStep`` names the command, the DevServer and the options in devctl's vocabulary, which
the magics share (``%devserver extend NAME --time 2h``), and knows the matching SDK call for Python
(``client.extend("NAME", by="2h")``). Errors carry one (``DevServerError.next_step``) and render it per
front end with ``DevServerError.render``; texts stored on the server (condition messages, Events) are
written in devctl's syntax by ``NextStep.devctl``. ``tests/cli/test_hints.py`` parses every step the SDK
and the operator can produce through devctl's Click group, so a flag that does not exist fails the build.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FRONT_ENDS", "FrontEnd", "NextStep"]

FrontEnd = Literal["devctl", "magic", "python"]
FRONT_ENDS: tuple[FrontEnd, ...] = ("devctl", "magic", "python")

# command -> (the client method, {devctl option: its keyword}); None: no Python equivalent (a terminal step).
_PYTHON: Mapping[str, tuple[str, Mapping[str, str]] | None] = {
    "list": ("list", {}),
    "flavors": ("flavors", {}),
    "describe": ("describe", {}),
    "start": ("start", {"wait": "wait"}),
    "stop": ("stop", {"wait": "wait"}),
    "wait": ("wait", {"for": "for_phase", "timeout": "timeout"}),
    "delete": ("delete", {"wait": "wait"}),
    "extend": ("extend", {"time": "by"}),
    "update": ("update", {"flavor": "flavor", "image": "image"}),
    "logs": ("logs", {"rank": "rank", "tail": "tail", "previous": "previous"}),
    "create": ("create", {"flavor": "flavor", "time": "time_to_live", "distributed": "mode"}),
    "shell": ("shell", {"rank": "rank"}),
    "launch": ("launch", {"timeout": "timeout"}),
    "local up": None,
    "local down": None,
}
# Options that are not a DevServer's but the client's own (DevServerClient(context=...)).
_CLIENT_OPTIONS = ("context", "kubeconfig", "namespace")
# Magic options the magics spell differently from devctl (same meaning).
_MAGIC_SPELLING: Mapping[str, str] = {}


@dataclass(frozen=True)
class NextStep:
    """A command to run next, e.g. ``NextStep("extend", "mydev", {"time": "2h"})``.

    Attributes:
        command: the devctl command path (``extend``, ``local up``, ``list``...), also the magic's verb.
        name: the DevServer it applies to (devctl's NAME argument), or None.
        options: devctl's long options without the dashes, in order; ``True`` is a flag, a string a value,
            ``"..."`` a value the user must choose (rendered as its name: ``--flavor FLAVOR``); give an
            example value instead where devctl checks the type (durations, numbers); an ``int`` stays a
            number in Python (``world_size=4``).
    """

    command: str
    name: str | None = None
    options: Mapping[str, str | bool | int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", dict(self.options))

    def devctl(self) -> str:
        """``devctl extend mydev --time 2h``."""
        return " ".join(["devctl", *self._words({})])

    def magic(self) -> str:
        """``%devserver extend mydev --time 2h`` (a terminal-only step stays in devctl's words)."""
        if self.command.startswith("local "):
            return self.devctl()
        return " ".join(["%devserver", *self._words(_MAGIC_SPELLING)])

    def python(self) -> str:
        """``client.extend("mydev", by="2h")``; a step with no SDK call stays a shell command."""
        target = _PYTHON.get(self.command)
        if target is None:
            return self.devctl()
        method, keywords = target
        client_options = {key: value for key, value in self.options.items() if key in _CLIENT_OPTIONS}
        arguments = [repr(self.name)] if self.name else []
        for option, value in self.options.items():
            if option in _CLIENT_OPTIONS:
                continue
            keyword = keywords.get(option, option.replace("-", "_"))
            if option == "distributed":
                arguments.append('mode="distributed"')
            else:
                arguments.append(f"{keyword}={_python_value(value)}")
        receiver = "client"
        if client_options:
            settings = ", ".join(f"{key}={_python_value(value)}" for key, value in client_options.items())
            receiver = f"DevServerClient({settings})"
        return f"{receiver}.{method}({', '.join(arguments)})"

    def render(self, front_end: FrontEnd) -> str:
        """The step in ``devctl``, ``magic`` or ``python`` syntax."""
        if front_end == "devctl":
            return self.devctl()
        if front_end == "magic":
            return self.magic()
        if front_end == "python":
            return self.python()
        raise ValueError(f"front_end must be one of {', '.join(FRONT_ENDS)}, not {front_end!r}")

    def _words(self, spelling: Mapping[str, str]) -> list[str]:
        words = self.command.split()
        if self.name:
            words.append(shlex.quote(self.name))
        for option, value in self.options.items():
            flag = f"--{spelling.get(option, option)}"
            if value is True:
                words.append(flag)
            elif value is False:
                continue
            else:
                words += [flag, option.upper().replace("-", "_") if value == "..." else shlex.quote(str(value))]
        return words


def _python_value(value: str | bool | int) -> str:
    if value == "...":
        return "..."
    return repr(value)

"""Every next step the SDK and the operator can tell a user is a devctl command that parses (issue 14).

The ExpiringSoon condition once said ``devctl extend NAME --by 2h``, and extend has no ``--by``. This test
reads the SDK's and the operator's source, collects every ``NextStep(...)`` they build and every
``devctl ...`` they write into a message, and parses each through devctl's own Click group: a flag or a
command that does not exist fails the build, wherever the hint is.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from devservers_cli.main import cli

from devservers_sdk.next_steps import NextStep

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [path for folder in (ROOT / "devservers_sdk", ROOT / "operator" / "devservers_operator")
           for path in sorted(folder.rglob("*.py")) if "localcluster" not in path.parts]
PLACEHOLDER = "mydev"
# "devctl" and the words of a command after it: stops at the end of a sentence or a clause.
_DEVCTL_TEXT = re.compile(r"\bdevctl((?: +(?:--?[\w-]+|[\w/@:=.-]*\w|NAME))+)")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _text(node: ast.AST) -> str | None:
    """A string literal, with every ``{...}`` of an f-string as the placeholder name."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else PLACEHOLDER for part in node.values)
    return None


def _step(node: ast.Call) -> NextStep:
    def value(arg: ast.AST) -> str:
        return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else PLACEHOLDER

    def option_value(arg: ast.AST) -> str | bool:
        if isinstance(arg, ast.Constant) and arg.value is True:
            return True
        if isinstance(arg, ast.JoinedStr):  # e.g. f"{seconds}s": a number where the expression is
            return "".join(part.value if isinstance(part, ast.Constant) else "1" for part in arg.values)
        return value(arg)

    command = value(node.args[0])
    name = value(node.args[1]) if len(node.args) > 1 else None
    options: dict[str, str | bool] = {}
    if len(node.args) > 2:
        mapping = node.args[2]
        assert isinstance(mapping, ast.Dict), ast.unparse(node)
        for key, item in zip(mapping.keys, mapping.values, strict=True):
            if key is None:  # **{...}: a conditional part; take what it may add
                inner = item.body if isinstance(item, ast.IfExp) else item
                assert isinstance(inner, ast.Dict), ast.unparse(node)
                for k, v in zip(inner.keys, inner.values, strict=True):
                    options[value(k)] = option_value(v) if isinstance(v, ast.Constant | ast.JoinedStr) else "1"
                continue
            options[value(key)] = option_value(item)
    return NextStep(command, name, options)


def collected_hints() -> Iterator[tuple[str, str]]:
    """(where, devctl command line) for every hint in the SDK's and the operator's source."""
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "NextStep" and node.args:
                yield where, _step(node).devctl()
            elif id(node) not in skip and (text := _text(node)) is not None and "devctl " in text:
                if isinstance(node, ast.Constant) and any(
                        isinstance(parent, ast.JoinedStr) and node in parent.values for parent in ast.walk(tree)):
                    continue  # a piece of an f-string: the whole string is read instead
                for match in _DEVCTL_TEXT.finditer(text):
                    # A command to run follows a colon, a parenthesis, a quote or "e.g."; "have devctl make
                    # a key" is prose about devctl, not a hint.
                    before = text[:match.start()].rstrip()
                    if before and not before.endswith((":", "(", "`", "e.g.", ";", "'", '"')):
                        continue
                    yield where, "devctl" + match.group(1).rstrip(".")


def parse(line: str) -> click.Command:
    """Parse a devctl command line as devctl would, without running it; the command reached."""
    words = shlex.split(line)
    assert words[0] == "devctl"
    args = words[1:]
    group: click.Group = cli
    parent = click.Context(cli, info_name="devctl")
    while True:
        assert args, f"{line!r} names no command"
        command = group.get_command(parent, args[0])
        assert command is not None, f"{line!r}: devctl has no command {args[0]!r}"
        if isinstance(command, click.Group):
            parent = click.Context(command, info_name=args[0], parent=parent)
            group, args = command, args[1:]
            continue
        if len(args) > 1:  # a bare "devctl cp" names the command; with arguments, they must parse
            command.make_context(args[0], args[1:], parent=parent)
        return command


HINTS = sorted(set(collected_hints()))


def test_the_hints_were_found() -> None:
    """Guards the collector itself: these are known to exist, so an empty or partial scan fails."""
    lines = {line for _, line in HINTS}
    assert {"devctl extend mydev --time 2h", "devctl list", "devctl local up", "devctl start mydev",
            "devctl logs mydev --rank 1 --previous", "devctl update mydev --flavor FLAVOR"} <= lines, lines
    assert len(HINTS) >= 20


@pytest.mark.parametrize(("where", "line"), HINTS, ids=[f"{where} {line}" for where, line in HINTS])
def test_every_hint_parses_through_devctl(where: str, line: str) -> None:
    try:
        parse(line)
    except click.UsageError as exc:
        pytest.fail(f"{where}: the hint {line!r} does not parse: {exc.format_message()}")


def test_a_wrong_flag_is_caught() -> None:
    with pytest.raises(click.UsageError, match="--by"):
        parse("devctl extend mydev --by 2h")

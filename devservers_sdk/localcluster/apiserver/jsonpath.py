"""The Kubernetes flavour of JSONPath, as used by CRD printer columns and ``kubectl wait --for=jsonpath``.

The apiserver renders ``additionalPrinterColumns[].jsonPath`` with client-go's ``util/jsonpath`` package
(with missing keys allowed), and kubectl evaluates ``--for=jsonpath='{...}'`` with the same package. The
emulator has to accept the same expressions and find the same values, so this module implements that
dialect rather than the generic JSONPath specification:

* fields: ``.spec.owner``; dots inside a key are escaped (``.metadata.labels.app\\.kubernetes\\.io/name``)
  or the key is quoted (``['app.kubernetes.io/name']``); ``/`` and ``-`` are plain field characters;
* arrays: ``[0]``, ``[-1]``, slices ``[1:3]`` / ``[::2]``, unions ``[0,2]`` and the wildcard ``[*]``;
* wildcards and recursive descent: ``.*``, ``..name``;
* filters: ``[?(@.type=="Ready")]``, ``[?(@.replicas>1)]``, ``[?(@.status)]`` (existence);
* an optional ``{...}`` wrapper and ``$`` root, as kubectl accepts both.

Missing keys, out-of-range indexes and type mismatches simply produce no match, which is what the CRD
table convertor (``AllowMissingKeys(true)``) shows as an empty cell.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


class JSONPathError(ValueError):
    """The expression is not valid Kubernetes JSONPath."""


# Characters that end a bare field name, as client-go's parser treats them.
_TERMINATORS = frozenset(".,[]$@{}() \t\r\n")

# A step maps one value to the values it selects; the document root is passed along for "$" in filters.
_Step = Callable[[Any, Any], Iterator[Any]]


@dataclass(frozen=True)
class JSONPath:
    """A parsed expression; ``find`` can be called repeatedly without re-parsing."""

    expression: str
    steps: tuple[_Step, ...]

    def find(self, obj: Any, *, root: Any = None) -> list[Any]:
        root = obj if root is None else root
        values: list[Any] = [obj]
        for step in self.steps:
            values = [result for value in values for result in step(value, root)]
        return values


def parse(expression: str) -> JSONPath:
    """Parse ``expression`` once; raises ``JSONPathError`` when it is malformed."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if not text:
        raise JSONPathError("empty JSONPath expression")
    parser = _Parser(text)
    steps = parser.parse_path(root_allowed=True)
    if parser.pos != len(text):
        raise JSONPathError(f"unexpected {text[parser.pos]!r} at position {parser.pos} in {expression!r}")
    return JSONPath(expression, tuple(steps))


def evaluate(expression: str, obj: Any) -> list[Any]:
    """All values ``expression`` selects in ``obj`` (an empty list when nothing matches)."""
    return parse(expression).find(obj)


# --- steps -------------------------------------------------------------------------------------------


def _field_step(name: str) -> _Step:
    def step(value: Any, root: Any) -> Iterator[Any]:
        if isinstance(value, dict) and name in value:
            yield value[name]

    return step


def _wildcard(value: Any, root: Any = None) -> Iterator[Any]:
    if isinstance(value, dict):
        yield from value.values()
    elif isinstance(value, list):
        yield from value


def _descendants(value: Any) -> Iterator[Any]:
    yield value
    for child in _wildcard(value):
        yield from _descendants(child)


def _recursive_step(inner: _Step) -> _Step:
    def step(value: Any, root: Any) -> Iterator[Any]:
        for node in _descendants(value):
            yield from inner(node, root)

    return step


def _index_step(indexes: tuple[int, ...]) -> _Step:
    def step(value: Any, root: Any) -> Iterator[Any]:
        if not isinstance(value, list):
            return
        for index in indexes:
            if -len(value) <= index < len(value):
                yield value[index]

    return step


def _slice_step(start: int | None, stop: int | None, stride: int | None) -> _Step:
    def step(value: Any, root: Any) -> Iterator[Any]:
        if isinstance(value, list):
            yield from value[start:stop:stride]

    return step


def _keys_step(keys: tuple[str, ...]) -> _Step:
    def step(value: Any, root: Any) -> Iterator[Any]:
        if isinstance(value, dict):
            for key in keys:
                if key in value:
                    yield value[key]

    return step


@dataclass(frozen=True)
class _Operand:
    path: JSONPath | None = None
    # Paths starting with "$" are evaluated against the document root, not the candidate item.
    absolute: bool = False
    literal: Any = None


@dataclass(frozen=True)
class _Filter:
    left: _Operand
    op: str | None
    right: _Operand | None

    @staticmethod
    def _values(operand: _Operand, item: Any, root: Any) -> list[Any]:
        if operand.path is None:
            return [operand.literal]
        return operand.path.find(root if operand.absolute else item, root=root)

    def matches(self, item: Any, root: Any) -> bool:
        left = self._values(self.left, item, root)
        if self.op is None:
            return bool(left)
        assert self.right is not None
        right = self._values(self.right, item, root)
        if not left or not right:
            return False
        return _compare(left[0], self.op, right[0])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(left: Any, op: str, right: Any) -> bool:
    comparable = (_is_number(left) and _is_number(right)) or (type(left) is type(right))
    if op == "==":
        return comparable and left == right
    if op == "!=":
        return not (comparable and left == right)
    if not comparable or not isinstance(left, int | float | str) or isinstance(left, bool):
        return False
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def _filter_step(flt: _Filter) -> _Step:
    def step(value: Any, root: Any) -> Iterator[Any]:
        candidates = (
            value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
        )
        for item in candidates:
            if flt.matches(item, root):
                yield item

    return step


# --- parser ------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_INTEGER = re.compile(r"-?\d+")
# Inside a filter the comparison operators also end a field name ("@.type==...").
_FILTER_TERMINATORS = _TERMINATORS | frozenset("=!<>")
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.terminators = _TERMINATORS

    def _peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def _error(self, what: str) -> JSONPathError:
        return JSONPathError(f"{what} at position {self.pos} in {self.text!r}")

    def _skip_spaces(self) -> None:
        while self._peek() in (" ", "\t"):
            self.pos += 1

    def parse_path(self, *, root_allowed: bool, stop: str = "") -> list[_Step]:
        steps: list[_Step] = []
        if root_allowed and self._peek() == "$":
            self.pos += 1
        while self.pos < len(self.text) and self._peek() not in stop:
            char = self._peek()
            if char == "." and self._peek(1) == ".":
                self.pos += 2
                steps.append(_recursive_step(self._parse_after_dot()))
            elif char == ".":
                self.pos += 1
                steps.append(self._parse_after_dot())
            elif char == "[":
                steps.append(self._parse_bracket())
            elif not steps and char not in self.terminators:
                # kubectl also accepts a leading bare field ("status.phase").
                steps.append(self._parse_after_dot())
            else:
                break
        return steps

    def _parse_after_dot(self) -> _Step:
        if self._peek() == "*":
            self.pos += 1
            return _wildcard
        if self._peek() == "[":
            return self._parse_bracket()
        name = self._parse_field_name()
        if not name:
            raise self._error("expected a field name")
        return _field_step(name)

    def _parse_field_name(self) -> str:
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                chars.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char in self.terminators:
                break
            chars.append(char)
            self.pos += 1
        return "".join(chars)

    def _parse_bracket(self) -> _Step:
        self.pos += 1  # "["
        self._skip_spaces()
        if self._peek() == "?":
            self.pos += 1
            step = _filter_step(self._parse_filter())
        elif self._peek() == "*":
            self.pos += 1
            step = _wildcard
        elif self._peek() in ("'", '"'):
            keys = [self._parse_quoted()]
            self._skip_spaces()
            while self._peek() == ",":
                self.pos += 1
                self._skip_spaces()
                keys.append(self._parse_quoted())
                self._skip_spaces()
            step = _keys_step(tuple(keys))
        else:
            step = self._parse_indexes()
        self._skip_spaces()
        if self._peek() != "]":
            raise self._error("expected ']'")
        self.pos += 1
        return step

    def _parse_quoted(self) -> str:
        quote = self._peek()
        if quote not in ("'", '"'):
            raise self._error("expected a quoted key")
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text) and self.text[self.pos] != quote:
            if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
            chars.append(self.text[self.pos])
            self.pos += 1
        if self.pos >= len(self.text):
            raise self._error("unterminated quoted string")
        self.pos += 1
        return "".join(chars)

    def _parse_int(self) -> int | None:
        self._skip_spaces()
        match = _INTEGER.match(self.text, self.pos)
        if not match:
            return None
        self.pos = match.end()
        self._skip_spaces()
        return int(match.group())

    def _parse_indexes(self) -> _Step:
        first = self._parse_int()
        if self._peek() == ":":
            self.pos += 1
            stop = self._parse_int()
            stride = None
            if self._peek() == ":":
                self.pos += 1
                stride = self._parse_int()
                if stride == 0:
                    raise self._error("slice step cannot be zero")
            return _slice_step(first, stop, stride)
        if first is None:
            raise self._error("expected an array index")
        indexes = [first]
        while self._peek() == ",":
            self.pos += 1
            index = self._parse_int()
            if index is None:
                raise self._error("expected an array index")
            indexes.append(index)
        return _index_step(tuple(indexes))

    def _parse_filter(self) -> _Filter:
        self._skip_spaces()
        if self._peek() != "(":
            raise self._error("expected '(' after '?'")
        self.pos += 1
        left = self._parse_operand()
        self._skip_spaces()
        op = next((candidate for candidate in _OPERATORS if self.text.startswith(candidate, self.pos)), None)
        right = None
        if op is not None:
            self.pos += len(op)
            right = self._parse_operand()
            self._skip_spaces()
        if self._peek() != ")":
            raise self._error("expected ')' to close the filter")
        self.pos += 1
        return _Filter(left, op, right)

    def _parse_operand(self) -> _Operand:
        self._skip_spaces()
        char = self._peek()
        if char in ("@", "$"):
            self.pos += 1
            outer, self.terminators = self.terminators, _FILTER_TERMINATORS
            try:
                steps = self.parse_path(root_allowed=False, stop=")=!<> ")
            finally:
                self.terminators = outer
            return _Operand(path=JSONPath(char, tuple(steps)), absolute=char == "$")
        if char in ("'", '"'):
            return _Operand(literal=self._parse_quoted())
        number = _NUMBER.match(self.text, self.pos)
        if number:
            self.pos = number.end()
            literal = number.group()
            return _Operand(literal=float(literal) if any(c in literal for c in ".eE") else int(literal))
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return _Operand(literal=value)
        raise self._error("expected a filter operand")

"""A small, honest subset of CEL (the Common Expression Language), for admission policies and CRD rules.

kube-apiserver evaluates CEL in ValidatingAdmissionPolicies (``validations[].expression``,
``messageExpression``, ``matchConditions``, ``variables``) and in CRD ``x-kubernetes-validations``
rules. The emulator needs just enough of it to run the policies this project ships, so that a test
exercises the same YAML a platform team applies. "Honest" means: whatever is outside the subset is a
compile error at the moment the policy or CRD is created (as a real server refuses an expression that does
not compile), never a silent ``true``.

The subset:

* literals: ``null``, ``true``/``false``, integers (decimal and ``0x`` hex), doubles, strings in single
  or double quotes (with the usual escapes, and ``r'raw'``), lists ``[a, b]``, maps ``{'k': v}``;
* identifiers declared by the caller (``object``, ``request``, ``self``...), field selection ``a.b``,
  indexing ``a[i]`` / ``m['k']``, and the ``has(a.b)`` macro;
* operators ``!`` and unary ``-``, ``* / %``, ``+ -``, ``< <= > >= == !=``, ``in``, ``&&``, ``||``
  and the ternary ``c ? a : b``;
* functions ``size``, ``int``, ``string``, the string methods ``startsWith``, ``endsWith``,
  ``contains``, ``matches`` (RE2-compatible patterns only), and the macros ``all``, ``exists`` and
  ``exists_one`` over lists and map keys.

Semantics follow the CEL specification where a policy could tell the difference: no implicit numeric
conversion (``1 + 1.0`` is an error), heterogeneous equality is ``false`` rather than an error,
``&&``/``||`` and the ``all``/``exists`` macros absorb errors when the other side decides the result,
selecting a missing map key is ``no such key``, and integers are 64-bit with overflow errors. Types are
checked only where the answer is evident from the syntax (a validation that is a string literal is
refused); everything else is checked at evaluation, where a real server's type checker would have
complained earlier. A step budget stands in for the apiserver's cost limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CelCompileError",
    "CelError",
    "CelEvalError",
    "LazyVariables",
    "Program",
    "cel_equal",
    "compile_expression",
    "type_name",
]

MAX_EXPRESSION_LENGTH = 100_000  # cel-go's default code point limit
MAX_NESTING = 100
MAX_TREE_DEPTH = 250
DEFAULT_STEP_BUDGET = 1_000_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_RESERVED = frozenset({
    "as", "break", "const", "continue", "else", "for", "function", "if", "import", "let", "loop",
    "package", "namespace", "return", "var", "void", "while",
})  # fmt: skip
_MACROS = {"all": 2, "exists": 2, "exists_one": 2}
_METHODS = {"startsWith": 1, "endsWith": 1, "contains": 1, "matches": 1, "size": 0}
_GLOBALS = {"size": 1, "int": 1, "string": 1, "matches": 2}
_OUTSIDE_SUBSET = {
    "map", "filter", "double", "uint", "bytes", "bool", "type", "dyn", "duration", "timestamp", "lowerAscii",
    "upperAscii", "split", "join", "replace", "trim", "substring", "indexOf", "lastIndexOf", "quantity",
    "isSorted", "sum", "min", "max", "url", "ip", "cidr", "format", "optional", "charAt", "reverse", "sets",
}  # fmt: skip


class CelError(Exception):
    """Base of this module's errors; ``str()`` is the message a server would show."""


class CelCompileError(CelError):
    """The expression is not valid CEL, or uses something outside this subset."""


class CelEvalError(CelError):
    """Evaluating a compiled expression failed (no such key, no matching overload, overflow...)."""


def type_name(value: Any) -> str:
    """CEL's name for the type of ``value`` (``bool``, ``int``, ``double``, ``string``, ``list``, ``map``...)."""
    if value is None:
        return "null_type"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "map"
    return type(value).__name__


# -- tokens ---------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<double>(?:\d+\.\d+|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<uint>(?:0[xX][0-9a-fA-F]+|\d+)[uU])
  | (?P<int>0[xX][0-9a-fA-F]+|\d+)
  | (?P<string>[rR]?(?:'''|\"\"\"|'|\"))
  | (?P<bytes>[bB][rR]?['\"])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE,
)

_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?", "a": "\a", "b": "\b", "f": "\f", "n": "\n",
            "r": "\r", "t": "\t", "v": "\v"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int
    value: Any = None


def _location(source: str, position: int) -> str:
    line = source.count("\n", 0, position) + 1
    column = position - (source.rfind("\n", 0, position) + 1) + 1
    return f"<input>:{line}:{column}"


def _compile_error(source: str, position: int, message: str) -> CelCompileError:
    return CelCompileError(f"ERROR: {_location(source, position)}: {message}")


def _read_string(source: str, start: int, opener: str) -> tuple[str, int]:
    raw = opener[0] in "rR"
    quote = opener[1:] if raw else opener
    if len(quote) == 3:
        raise _compile_error(source, start, "triple-quoted strings are outside the local cluster's CEL subset")
    index = start + len(opener)
    out: list[str] = []
    while True:
        if index >= len(source) or source[index] == "\n":
            raise _compile_error(source, start, "Syntax error: token recognition error: unterminated string")
        char = source[index]
        if char == quote:
            return "".join(out), index + 1
        if char == "\\" and not raw:
            index += 1
            if index >= len(source):
                break
            code = source[index]
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
                index += 1
            elif code in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[code]
                digits = source[index + 1:index + 1 + width]
                if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                    raise _compile_error(source, index, f"Syntax error: invalid \\{code} escape")
                point = int(digits, 16)
                if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
                    raise _compile_error(source, index, "Syntax error: invalid unicode code point")
                out.append(chr(point))
                index += 1 + width
            elif code in "0123":
                digits = source[index:index + 3]
                if not re.fullmatch(r"[0-7]{3}", digits):
                    raise _compile_error(source, index, "Syntax error: invalid octal escape")
                out.append(chr(int(digits, 8)))
                index += 3
            else:
                raise _compile_error(source, index, f"Syntax error: invalid escape sequence \\{code}")
            continue
        out.append(char)
        index += 1
    raise _compile_error(source, start, "Syntax error: unterminated string")


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(source):
        match = _TOKEN.match(source, index)
        if match is None:
            raise _compile_error(source, index, f"Syntax error: token recognition error at: '{source[index]}'")
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "space":
            index = match.end()
            continue
        if kind == "string":
            value, end = _read_string(source, index, text)
            tokens.append(_Token("string", source[index:end], index, value))
            index = end
            continue
        if kind in ("uint", "bytes"):
            what = "unsigned integers" if kind == "uint" else "bytes literals"
            raise _compile_error(source, index, f"{what} are outside the local cluster's CEL subset")
        if kind == "int":
            number = int(text, 16) if text[:2] in ("0x", "0X") else int(text)
            tokens.append(_Token("int", text, index, number))
        elif kind == "double":
            tokens.append(_Token("double", text, index, float(text)))
        else:
            tokens.append(_Token(kind, text, index))
        index = match.end()
    tokens.append(_Token("eof", "", len(source)))
    return tokens


# -- syntax tree ----------------------------------------------------------------------------------------------
#
# Nodes are tuples: (kind, position, *fields). Kinds: lit, ident, select, has, index, call, list, map,
# not, neg, binary, and, or, cond, fold.

Node = tuple[Any, ...]


class _Parser:
    def __init__(self, source: str, declared: frozenset[str], variable_names: frozenset[str] | None) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0
        self.depth = 0
        self.declared = declared
        self.variable_names = variable_names
        self.scopes: list[str] = []

    # tokens

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def _take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _accept(self, text: str) -> bool:
        if self.token.kind == "op" and self.token.text == text:
            self.index += 1
            return True
        return False

    def _expect(self, text: str) -> _Token:
        token = self.token
        if token.kind != "op" or token.text != text:
            shown = token.text or "<EOF>"
            raise self._error(token.position, f"Syntax error: mismatched input '{shown}' expecting '{text}'")
        return self._take()

    def _error(self, position: int, message: str) -> CelCompileError:
        return _compile_error(self.source, position, message)

    def _nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self._error(self.token.position, f"expression nests more than {MAX_NESTING} levels deep")

    # grammar (CEL spec, "Syntax")

    def parse(self) -> Node:
        node = self.expr()
        if self.token.kind != "eof":
            raise self._error(self.token.position, f"Syntax error: extraneous input '{self.token.text}'")
        return node

    def expr(self) -> Node:
        self._nest()
        try:
            condition = self.disjunction()
            if self.token.kind == "op" and self.token.text == "?":
                position = self._take().position
                then = self.disjunction()
                self._expect(":")
                otherwise = self.expr()
                return ("cond", position, condition, then, otherwise)
            return condition
        finally:
            self.depth -= 1

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.token.kind == "op" and self.token.text == "||":
            position = self._take().position
            node = ("or", position, node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.relation()
        while self.token.kind == "op" and self.token.text == "&&":
            position = self._take().position
            node = ("and", position, node, self.relation())
        return node

    def relation(self) -> Node:
        node = self.addition()
        while (self.token.kind == "op" and self.token.text in ("<", "<=", ">", ">=", "==", "!=")) or (
                self.token.kind == "ident" and self.token.text == "in"):
            operator = self._take()
            node = ("binary", operator.position, operator.text, node, self.addition())
        return node

    def addition(self) -> Node:
        node = self.multiplication()
        while self.token.kind == "op" and self.token.text in ("+", "-"):
            operator = self._take()
            node = ("binary", operator.position, operator.text, node, self.multiplication())
        return node

    def multiplication(self) -> Node:
        node = self.unary()
        while self.token.kind == "op" and self.token.text in ("*", "/", "%"):
            operator = self._take()
            node = ("binary", operator.position, operator.text, node, self.unary())
        return node

    def unary(self) -> Node:
        token = self.token
        if token.kind == "op" and token.text in ("!", "-"):
            self._take()
            self._nest()
            try:
                if token.text == "-" and self.token.kind in ("int", "double"):
                    literal = self._take()
                    value = -literal.value
                    if isinstance(value, int) and value < INT64_MIN:
                        raise self._error(literal.position, "integer literal out of range")
                    return self.member(("lit", literal.position, value))
                operand = self.unary()
            finally:
                self.depth -= 1
            return ("not" if token.text == "!" else "neg", token.position, operand)
        return self.member(self.primary())

    def member(self, node: Node) -> Node:
        while True:
            token = self.token
            if token.kind == "op" and token.text == ".":
                self._take()
                name = self._take()
                if name.kind != "ident":
                    raise self._error(name.position, f"Syntax error: mismatched input '{name.text or '<EOF>'}' "
                                                     "expecting IDENTIFIER")
                node = self._method(node, name) if self._accept("(") else self._select(node, name)
            elif token.kind == "op" and token.text == "[":
                self._take()
                index = self.expr()
                self._expect("]")
                node = ("index", token.position, node, index)
            else:
                return node

    def _select(self, operand: Node, name: _Token) -> Node:
        if operand[0] == "ident" and operand[2] == "variables" and self.variable_names is not None \
                and "variables" not in self.scopes and name.text not in self.variable_names:
            raise self._error(name.position, f"undefined field '{name.text}'")
        return ("select", name.position, operand, name.text)

    def _arguments(self) -> list[Node]:
        arguments: list[Node] = []
        if not self._accept(")"):
            arguments.append(self.expr())
            while self._accept(","):
                arguments.append(self.expr())
            self._expect(")")
        return arguments

    def _method(self, target: Node, name: _Token) -> Node:
        if name.text in _MACROS:
            return self._fold(target, name)
        if name.text not in _METHODS:
            raise self._unknown_function(name)
        arguments = self._arguments()
        if len(arguments) != _METHODS[name.text]:
            raise self._error(name.position, f"found no matching overload for '{name.text}' applied to "
                                             f"{len(arguments)} argument(s)")
        if name.text == "matches" and arguments[0][0] == "lit":
            _regex(arguments[0][2], lambda message: self._error(arguments[0][1], message))
        return ("call", name.position, name.text, target, arguments)

    def _fold(self, target: Node, name: _Token) -> Node:
        variable = self._take()
        if variable.kind != "ident" or variable.text in _RESERVED or variable.text == "in":
            raise self._error(variable.position, f"{name.text}() variable name must be a simple identifier")
        self._expect(",")
        self.scopes.append(variable.text)
        try:
            predicate = self.expr()
        finally:
            self.scopes.pop()
        self._expect(")")
        return ("fold", name.position, name.text, target, variable.text, predicate)

    def _unknown_function(self, name: _Token) -> CelCompileError:
        if name.text in _OUTSIDE_SUBSET:
            return self._error(name.position, f"function '{name.text}' is outside the local cluster's CEL subset")
        return self._error(name.position, f"undeclared reference to '{name.text}' (in container '')")

    def primary(self) -> Node:
        token = self._take()
        if token.kind in ("int", "double", "string"):
            if token.kind == "int" and token.value > INT64_MAX:
                raise self._error(token.position, "integer literal out of range")
            return ("lit", token.position, token.value)
        if token.kind == "ident":
            return self._identifier(token)
        if token.kind == "op" and token.text == "(":
            node = self.expr()
            self._expect(")")
            return node
        if token.kind == "op" and token.text == "[":
            items: list[Node] = []
            if not self._accept("]"):
                items.append(self.expr())
                while self._accept(","):
                    if self.token.kind == "op" and self.token.text == "]":
                        break
                    items.append(self.expr())
                self._expect("]")
            return ("list", token.position, items)
        if token.kind == "op" and token.text == "{":
            entries: list[tuple[Node, Node]] = []
            if not self._accept("}"):
                while True:
                    key = self.expr()
                    self._expect(":")
                    entries.append((key, self.expr()))
                    if not self._accept(","):
                        break
                    if self.token.kind == "op" and self.token.text == "}":
                        break
                self._expect("}")
            return ("map", token.position, entries)
        if token.kind == "op" and token.text == ".":
            raise self._error(token.position, "leading-dot identifiers are outside the local cluster's CEL subset")
        shown = token.text or "<EOF>"
        raise self._error(token.position, f"Syntax error: mismatched input '{shown}' expecting an expression")

    def _identifier(self, token: _Token) -> Node:
        name = token.text
        if name in ("true", "false"):
            return ("lit", token.position, name == "true")
        if name == "null":
            return ("lit", token.position, None)
        if name in _RESERVED or name == "in":
            raise self._error(token.position, f"Syntax error: reserved identifier '{name}'")
        if self._accept("("):
            if name == "has":
                return self._has(token)
            if name not in _GLOBALS:
                raise self._unknown_function(token)
            arguments = self._arguments()
            if len(arguments) != _GLOBALS[name]:
                raise self._error(token.position, f"found no matching overload for '{name}' applied to "
                                                  f"{len(arguments)} argument(s)")
            if name == "matches":
                return ("call", token.position, name, arguments[0], arguments[1:])
            return ("call", token.position, name, None, arguments)
        if name not in self.declared and name not in self.scopes:
            raise self._error(token.position, f"undeclared reference to '{name}' (in container '')")
        return ("ident", token.position, name)

    def _has(self, token: _Token) -> Node:
        argument = self.expr()
        self._expect(")")
        if argument[0] != "select":
            raise self._error(token.position, "invalid argument to has() macro")
        return ("has", token.position, argument[2], argument[3])


# -- static types: only what the syntax makes evident ----------------------------------------------------------


def _evident_type(node: Node) -> str | None:
    kind = node[0]
    if kind == "lit":
        return type_name(node[2])
    if kind in ("has", "not", "and", "or") or (kind == "fold"):
        return "bool"
    if kind == "binary" and node[2] in ("<", "<=", ">", ">=", "==", "!=", "in"):
        return "bool"
    if kind == "list":
        return "list"
    if kind == "map":
        return "map"
    if kind == "call":
        return {"size": "int", "int": "int", "string": "string", "startsWith": "bool", "endsWith": "bool",
                "contains": "bool", "matches": "bool"}.get(node[2])
    if kind == "binary" and node[2] == "+":
        left, right = _evident_type(node[3]), _evident_type(node[4])
        return left if left == right else None
    if kind == "cond":
        then, otherwise = _evident_type(node[3]), _evident_type(node[4])
        return then if then == otherwise else None
    return None


# -- evaluation -----------------------------------------------------------------------------------------------


class LazyVariables(Mapping[str, Any]):
    """``variables.<name>`` of a ValidatingAdmissionPolicy: each evaluated on first use, then cached."""

    def __init__(self, programs: Mapping[str, Program], activation: dict[str, Any]) -> None:
        self._programs = programs
        self._activation = activation
        self._values: dict[str, Any] = {}
        self._errors: dict[str, CelEvalError] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self._errors:
            raise self._errors[name]
        if name not in self._values:
            try:
                self._values[name] = self._programs[name].evaluate(self._activation)
            except CelEvalError as exc:
                self._errors[name] = exc
                raise
        return self._values[name]

    def __iter__(self) -> Any:
        return iter(self._programs)

    def __len__(self) -> int:
        return len(self._programs)


@dataclass
class _Budget:
    remaining: int

    def spend(self, amount: int = 1) -> None:
        self.remaining -= amount
        if self.remaining < 0:
            raise CelEvalError("operation cancelled: actual cost limit exceeded")


def _regex(pattern: Any, fail: Callable[[str], CelError]) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise fail(f"found no matching overload for 'matches' applied to '(string, {type_name(pattern)})'")
    # RE2 has no look-around and no back-references; Python would accept them and disagree with the server.
    if re.search(r"\(\?<?[=!]|\\[1-9]|\(\?P[=<]", pattern):
        raise fail(f"invalid regular expression {pattern!r}: look-around and back-references are not RE2")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise fail(f"invalid regular expression {pattern!r}: {exc}") from None


def _no_overload(name: str, *values: Any) -> CelEvalError:
    types = ", ".join(type_name(v) for v in values)
    return CelEvalError(f"no such overload: {name}({types})")


def _checked_int(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise CelEvalError("integer overflow")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def cel_equal(left: Any, right: Any) -> bool:
    """CEL equality: numbers by value across int and double, lists and maps element-wise, else same type."""
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if type_name(left) != type_name(right):
        return False
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(cel_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, Mapping):
        return left.keys() == right.keys() and all(cel_equal(left[k], right[k]) for k in left)
    return bool(left == right)


def _compare(operator: str, left: Any, right: Any) -> bool:
    comparable = (_is_number(left) and _is_number(right)) or (
        type_name(left) == type_name(right) and type_name(left) in ("string", "bool"))
    if not comparable:
        raise _no_overload(operator, left, right)
    if operator == "<":
        return bool(left < right)
    if operator == "<=":
        return bool(left <= right)
    if operator == ">":
        return bool(left > right)
    return bool(left >= right)


def _arithmetic(operator: str, left: Any, right: Any) -> Any:
    kinds = (type_name(left), type_name(right))
    if kinds == ("int", "int"):
        if operator == "+":
            return _checked_int(left + right)
        if operator == "-":
            return _checked_int(left - right)
        if operator == "*":
            return _checked_int(left * right)
        if right == 0:
            raise CelEvalError("division by zero" if operator == "/" else "modulus by zero")
        quotient = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)  # truncates, like Go
        if operator == "/":
            return _checked_int(quotient)
        return left - right * quotient
    if kinds == ("double", "double") and operator != "%":
        if operator == "+":
            return left + right
        if operator == "-":
            return left - right
        if operator == "*":
            return left * right
        return left / right if right else (float("nan") if left == 0 else float("inf") * (1 if left > 0 else -1))
    if operator == "+" and kinds == ("string", "string"):
        return left + right
    if operator == "+" and kinds == ("list", "list"):
        return [*left, *right]
    raise _no_overload({"+": "_+_", "-": "_-_", "*": "_*_", "/": "_/_", "%": "_%_"}[operator], left, right)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _no_overload("int", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise CelEvalError("integer overflow")
        return _checked_int(int(value))
    if isinstance(value, str):
        try:
            return _checked_int(int(value, 10))
        except ValueError:
            raise CelEvalError(f"cannot convert '{value}' to int") from None
    raise _no_overload("int", value)


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise _no_overload("string", value)


@dataclass(frozen=True)
class Program:
    """A compiled expression; ``evaluate`` runs it against an activation (name → value)."""

    source: str
    root: Node = field(repr=False)

    def references(self, name: str) -> bool:
        """Whether the expression reads the top-level identifier ``name`` (e.g. a CRD rule's ``oldSelf``)."""
        stack: list[Any] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, tuple) and node and node[0] == "ident" and node[2] == name:
                return True
            if isinstance(node, list | tuple):
                stack.extend(node)
        return False

    @property
    def evident_type(self) -> str | None:
        """The result type when the syntax alone says it (``bool`` for a comparison), else None."""
        return _evident_type(self.root)

    def evaluate(self, activation: Mapping[str, Any], *, budget: int = DEFAULT_STEP_BUDGET) -> Any:
        """Evaluate; raises ``CelEvalError`` with CEL's wording (``no such key: owner``...)."""
        try:
            return _Evaluator(activation, _Budget(budget)).eval(self.root, {})
        except RecursionError:
            raise CelEvalError("operation cancelled: the value nests too deeply") from None


class _Evaluator:
    def __init__(self, activation: Mapping[str, Any], budget: _Budget) -> None:
        self.activation = activation
        self.budget = budget

    def eval(self, node: Node, scope: dict[str, Any]) -> Any:
        self.budget.spend()
        kind = node[0]
        if kind == "lit":
            return node[2]
        if kind == "ident":
            name = node[2]
            if name in scope:
                return scope[name]
            if name not in self.activation:
                raise CelEvalError(f"no such attribute: {name}")
            return self.activation[name]
        if kind == "select":
            return self._select(self.eval(node[2], scope), node[3])
        if kind == "has":
            target = self.eval(node[2], scope)
            if not isinstance(target, Mapping):
                raise CelEvalError(f"invalid type for field selection: {type_name(target)}")
            return node[3] in target
        if kind == "index":
            return self._index(self.eval(node[2], scope), self.eval(node[3], scope))
        if kind == "list":
            return [self.eval(item, scope) for item in node[2]]
        if kind == "map":
            result: dict[Any, Any] = {}
            for key_node, value_node in node[2]:
                key = self.eval(key_node, scope)
                if type_name(key) not in ("string", "int", "bool"):
                    raise CelEvalError(f"unsupported key type: {type_name(key)}")
                if key in result:
                    raise CelEvalError(f"Failed with repeated key: {key}")
                result[key] = self.eval(value_node, scope)
            return result
        if kind == "not":
            value = self.eval(node[2], scope)
            if not isinstance(value, bool):
                raise _no_overload("!_", value)
            return not value
        if kind == "neg":
            value = self.eval(node[2], scope)
            if isinstance(value, bool) or not _is_number(value):
                raise _no_overload("-_", value)
            return _checked_int(-value) if isinstance(value, int) else -value
        if kind in ("and", "or"):
            return self._logical(kind, node[2], node[3], scope)
        if kind == "cond":
            condition = self.eval(node[2], scope)
            if not isinstance(condition, bool):
                raise _no_overload("_?_:_", condition)
            return self.eval(node[3] if condition else node[4], scope)
        if kind == "binary":
            return self._binary(node[2], self.eval(node[3], scope), self.eval(node[4], scope))
        if kind == "call":
            return self._call(node, scope)
        if kind == "fold":
            return self._fold(node, scope)
        raise CelEvalError(f"unknown expression kind {kind}")

    @staticmethod
    def _select(target: Any, name: str) -> Any:
        if isinstance(target, Mapping):
            try:
                return target[name]
            except KeyError:
                raise CelEvalError(f"no such key: {name}") from None
        raise CelEvalError(f"type '{type_name(target)}' does not support field selection")

    @staticmethod
    def _index(target: Any, key: Any) -> Any:
        if isinstance(target, list | tuple):
            if isinstance(key, bool) or not isinstance(key, int | float) or (
                    isinstance(key, float) and not key.is_integer()):
                raise _no_overload("_[_]", target, key)
            if not 0 <= int(key) < len(target):
                raise CelEvalError(f"index out of bounds: {int(key)}")
            return target[int(key)]
        if isinstance(target, Mapping):
            if key not in target or type_name(key) not in ("string", "int", "bool"):
                raise CelEvalError(f"no such key: {key}")
            return target[key]
        raise _no_overload("_[_]", target, key)

    def _logical(self, kind: str, left_node: Node, right_node: Node, scope: dict[str, Any]) -> bool:
        # CEL's commutative && and ||: an error on one side is absorbed if the other side decides.
        deciding = kind == "or"
        name = "_||_" if kind == "or" else "_&&_"
        failure: CelEvalError | None = None
        try:
            left = self.eval(left_node, scope)
            if not isinstance(left, bool):
                raise _no_overload(name, left)
            if left is deciding:
                return deciding
        except CelEvalError as exc:
            failure = exc
        right = self.eval(right_node, scope)
        if not isinstance(right, bool):
            raise _no_overload(name, right)
        if right is deciding:
            return deciding
        if failure is not None:
            raise failure
        return not deciding

    def _binary(self, operator: str, left: Any, right: Any) -> Any:
        if operator == "==":
            return cel_equal(left, right)
        if operator == "!=":
            return not cel_equal(left, right)
        if operator == "in":
            if isinstance(right, list | tuple):
                self.budget.spend(len(right))
                return any(cel_equal(left, item) for item in right)
            if isinstance(right, Mapping):
                return type_name(left) in ("string", "int", "bool") and left in right
            raise _no_overload("@in", left, right)
        if operator in ("<", "<=", ">", ">="):
            return _compare(operator, left, right)
        result = _arithmetic(operator, left, right)
        if isinstance(result, str | list):
            self.budget.spend(len(result) // 16)
        return result

    def _call(self, node: Node, scope: dict[str, Any]) -> Any:
        name, target_node, argument_nodes = node[2], node[3], node[4]
        target = self.eval(target_node, scope) if target_node is not None else None
        arguments = [self.eval(argument, scope) for argument in argument_nodes]
        if name == "size":
            value = target if target_node is not None else arguments[0]
            if isinstance(value, str | list | tuple | Mapping):
                return len(value)
            raise _no_overload("size", value)
        if name == "int":
            return _to_int(arguments[0])
        if name == "string":
            return _to_string(arguments[0])
        argument = arguments[0]
        if not isinstance(target, str) or not isinstance(argument, str):
            raise _no_overload(name, target, argument)
        self.budget.spend(1 + len(target) // 16)
        if name == "startsWith":
            return target.startswith(argument)
        if name == "endsWith":
            return target.endswith(argument)
        if name == "contains":
            return argument in target
        return _regex(argument, CelEvalError).search(target) is not None

    def _fold(self, node: Node, scope: dict[str, Any]) -> Any:
        macro, target_node, variable, predicate = node[2], node[3], node[4], node[5]
        target = self.eval(target_node, scope)
        if isinstance(target, Mapping):
            items = list(target.keys())
        elif isinstance(target, list | tuple):
            items = list(target)
        else:
            raise _no_overload(macro, target)
        failure: CelEvalError | None = None
        matches = 0
        for item in items:
            try:
                outcome = self.eval(predicate, {**scope, variable: item})
            except CelEvalError as exc:
                failure = failure or exc
                continue
            if not isinstance(outcome, bool):
                raise _no_overload(macro, outcome)
            if macro == "all" and not outcome:
                return False
            if macro == "exists" and outcome:
                return True
            matches += outcome
        if failure is not None:
            raise failure
        if macro == "all":
            return True
        if macro == "exists":
            return False
        return matches == 1


def compile_expression(source: str, *, declared: Iterable[str],
                       variable_names: Iterable[str] | None = None) -> Program:
    """Parse ``source`` for an environment that declares the identifiers ``declared``.

    Args:
        source: the expression.
        declared: top-level identifiers the environment provides (``object``, ``request``, ``self``...).
        variable_names: when given, ``variables.<name>`` may only name one of these (a policy's variables).

    Raises:
        CelCompileError: a syntax error, an undeclared identifier or function, or syntax outside the subset;
            the message has cel-go's ``ERROR: <input>:line:column: ...`` shape.
    """
    if not isinstance(source, str):
        raise CelCompileError("ERROR: <input>:1:1: the expression must be a string")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise CelCompileError(f"ERROR: <input>:1:1: expression code point size exceeds limit: size: "
                              f"{len(source)}, limit {MAX_EXPRESSION_LENGTH}")
    if not source.strip():
        raise CelCompileError("ERROR: <input>:1:1: Syntax error: mismatched input '<EOF>' expecting an expression")
    names = frozenset(variable_names) if variable_names is not None else None
    try:
        root = _Parser(source, frozenset(declared), names).parse()
    except RecursionError:
        root = None
    # Operator chains (a + b + c ...) parse in a loop but evaluate recursively: bound the tree's depth too.
    if root is None or _depth(root) > MAX_TREE_DEPTH:
        raise CelCompileError(f"ERROR: <input>:1:1: expression nests more than {MAX_TREE_DEPTH} levels deep")
    return Program(source, root)


def _depth(root: Node) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, tuple) and node and isinstance(node[0], str):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in node[2:])
        elif isinstance(node, list | tuple):
            stack.extend((child, depth) for child in node)
    return deepest

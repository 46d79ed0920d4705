"""Label and field selectors, parsed and matched the way kube-apiserver does it.

``kubectl get -l``, the ``kubernetes`` client's ``label_selector=`` / ``field_selector=`` arguments,
kopf's ``fieldSelector=metadata.name=X`` watches and the selectors embedded in objects (Deployment
``spec.selector``, Service ``spec.selector``) all reach the emulator as either the selector string
grammar or a ``metav1.LabelSelector`` object. Mis-parsing one silently returns the wrong objects, so this
module mirrors:

* ``k8s.io/apimachinery/pkg/labels`` (``Parse``, ``Requirement.Matches``, ``Selector.String``): the
  set-based grammar, key and value validation, the error wording, and the canonical string form
  (requirements sorted by key, set values sorted) that the scale subresource reports in
  ``status.selector``;
* ``metav1.LabelSelectorAsSelector`` for ``matchLabels`` / ``matchExpressions``;
* ``k8s.io/apimachinery/pkg/fields`` (``ParseSelector``): ``=``, ``==``, ``!=`` terms with ``\\``
  escapes. Which fields a kind supports is the server's decision (:meth:`FieldSelector.fields`); this
  module only resolves and compares values.

Invalid selectors raise :class:`SelectorError`, which the server answers with 400 BadRequest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "label_selector_from_dict",
    "parse_field_selector",
    "parse_label_selector",
]


class SelectorError(ValueError):
    """An unparsable or invalid selector; ``message`` is the text for the 400 response."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------------------------------
# Validation (k8s.io/apimachinery/pkg/util/validation)
# --------------------------------------------------------------------------------------------------

_NAME_MAX = 63
_PREFIX_MAX = 253
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

_NAME_FORMAT_ERROR = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_SUBDOMAIN_FORMAT_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_VALUE_FORMAT_ERROR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
    "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def _label_key_errors(key: str) -> list[str]:
    """Problems with a label key: an optional DNS-1123 subdomain prefix and '/', then a name."""
    errors = []
    parts = key.split("/")
    if len(parts) > 2:
        return [
            f"a qualified name {_NAME_FORMAT_ERROR} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            # Go measures strings in bytes, and since 1.35 the messages say so.
            if len(prefix.encode()) > _PREFIX_MAX:
                errors.append(f"prefix part must be no more than {_PREFIX_MAX} bytes")
            if not _DNS1123_SUBDOMAIN.fullmatch(prefix):
                errors.append(f"prefix part {_SUBDOMAIN_FORMAT_ERROR}")
    if not name:
        errors.append("name part must be non-empty")
    elif len(name.encode()) > _NAME_MAX:
        errors.append(f"name part must be no more than {_NAME_MAX} bytes")
    if not _QUALIFIED_NAME.fullmatch(name):
        errors.append(f"name part {_NAME_FORMAT_ERROR}")
    return errors


def _label_value_errors(value: str) -> list[str]:
    errors = []
    if len(value.encode()) > _NAME_MAX:
        errors.append(f"must be no more than {_NAME_MAX} bytes")
    if not _LABEL_VALUE.fullmatch(value):
        errors.append(_VALUE_FORMAT_ERROR)
    return errors


def _invalid(field: str, value: Any, errors: list[str]) -> SelectorError:
    # Same shape as a field.Error from apimachinery: `<path>: Invalid value: "<value>": <detail>`.
    return SelectorError(f'{field}: Invalid value: "{value}": {"; ".join(errors)}')


# --------------------------------------------------------------------------------------------------
# Label selectors
# --------------------------------------------------------------------------------------------------

# Operator spellings of k8s.io/apimachinery/pkg/selection.
IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = "exists", "!", "gt", "lt"
_SET_OPERATORS = (IN, NOT_IN)
_EXACT_OPERATORS = (EQUALS, DOUBLE_EQUALS, NOT_EQUALS)
_NUMERIC_OPERATORS = (GREATER_THAN, LESS_THAN)
_OPERATOR_SPELLING = {
    EQUALS: "=",
    DOUBLE_EQUALS: "==",
    NOT_EQUALS: "!=",
    IN: " in ",
    NOT_IN: " notin ",
    GREATER_THAN: ">",
    LESS_THAN: "<",
}
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class Requirement:
    """One ANDed term of a label selector: ``key``, an operator and its values."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator in (IN, EQUALS, DOUBLE_EQUALS):
            return present and labels[self.key] in self.values
        if self.operator in (NOT_IN, NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if self.operator == EXISTS:
            return present
        if self.operator == DOES_NOT_EXIST:
            return not present
        if self.operator in _NUMERIC_OPERATORS:
            if not present or not _INTEGER.fullmatch(labels[self.key]) or len(self.values) != 1:
                return False
            actual, bound = int(labels[self.key]), int(self.values[0])
            return actual > bound if self.operator == GREATER_THAN else actual < bound
        return False

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return f"!{self.key}"
        values = ",".join(sorted(self.values))
        if self.operator in _SET_OPERATORS:
            values = f"({values})"
        return f"{self.key}{_OPERATOR_SPELLING[self.operator]}{values}"


def _requirement(key: str, operator: str, values: list[str]) -> Requirement:
    """Validate like ``labels.NewRequirement``."""
    key_errors = _label_key_errors(key)
    if key_errors:
        raise _invalid("key", key, key_errors)
    if operator in _SET_OPERATORS and not values:
        raise SelectorError(
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
        )
    if operator in _EXACT_OPERATORS and len(values) != 1:
        raise SelectorError(
            f"values: Invalid value: {values}: exact-match compatibility requires one single value"
        )
    if operator in (EXISTS, DOES_NOT_EXIST) and values:
        raise SelectorError(
            f"values: Invalid value: {values}: values set must be empty for exists and does not exist"
        )
    if operator in _NUMERIC_OPERATORS:
        if len(values) != 1:
            raise SelectorError(
                f"values: Invalid value: {values}: for 'Gt', 'Lt' operators, exactly one value is required"
            )
        if not _INTEGER.fullmatch(values[0]):
            raise SelectorError(
                f"values[0]: Invalid value: \"{values[0]}\": for 'Gt', 'Lt' operators, "
                "the value must be an integer"
            )
    for index, value in enumerate(values):
        value_errors = _label_value_errors(value)
        if value_errors:
            raise _invalid(f"values[{index}]", value, value_errors)
    return Requirement(key, operator, tuple(values))


@dataclass(frozen=True)
class LabelSelector:
    """An AND of requirements; the empty selector selects everything.

    ``selects_nothing`` models ``labels.Nothing()``, which is what a *nil* ``metav1.LabelSelector``
    converts to: it matches no object and, like in Go, prints as the empty string.
    """

    requirements: tuple[Requirement, ...] = ()
    selects_nothing: bool = False

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        return cls(selects_nothing=True)

    @property
    def is_everything(self) -> bool:
        return not self.selects_nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.selects_nothing:
            return False
        labels = labels or {}
        return all(requirement.matches(labels) for requirement in self.requirements)

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must have (``key=v``, ``key==v`` or ``key in (v)``), if any."""
        for requirement in self.requirements:
            if requirement.key == key:
                if requirement.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(requirement.values) == 1:
                    return requirement.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


def _sorted_requirements(requirements: list[Requirement]) -> tuple[Requirement, ...]:
    # Sorted by key like the Go parser, so equal selectors print identically whatever the input order.
    return tuple(sorted(requirements, key=lambda requirement: requirement.key))


# Tokens of the label selector lexer.
_END, _IDENTIFIER, _COMMA, _OPEN, _CLOSE = "end", "identifier", ",", "(", ")"
_BANG, _EQUALS, _DOUBLE_EQUALS, _NOT_EQUALS, _GT, _LT = "!", "=", "==", "!=", ">", "<"
_IN, _NOT_IN = "in", "notin"
_SYMBOLS = ("!=", "==", "!", "=", "(", ")", ",", ">", "<")  # longest first
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_KEYWORDS = {"in": _IN, "notin": _NOT_IN}
_OPERATOR_TOKENS = {
    _IN: IN,
    _NOT_IN: NOT_IN,
    _EQUALS: EQUALS,
    _DOUBLE_EQUALS: DOUBLE_EQUALS,
    _NOT_EQUALS: NOT_EQUALS,
    _GT: GREATER_THAN,
    _LT: LESS_THAN,
}


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    while True:
        while position < len(text) and text[position] in _WHITESPACE:
            position += 1
        if position >= len(text):
            tokens.append((_END, ""))
            return tokens
        if text[position] in _SPECIAL:
            symbol = next(s for s in _SYMBOLS if text.startswith(s, position))
            tokens.append((symbol, symbol))
            position += len(symbol)
            continue
        start = position
        while position < len(text) and text[position] not in _SPECIAL and text[position] not in _WHITESPACE:
            position += 1
        word = text[start:position]
        tokens.append((_KEYWORDS.get(word, _IDENTIFIER), word))


class _LabelParser:
    """Recursive descent over the token list, following labels.Parser (and its error messages).

    ``in`` and ``notin`` are keywords only where an operator is expected; as keys and values they are
    ordinary identifiers (``in in (in)`` is a valid selector).
    """

    def __init__(self, text: str) -> None:
        self._tokens = _tokenize(text)
        self._position = 0

    def _peek(self, values: bool = True) -> tuple[str, str]:
        token, literal = self._tokens[self._position]
        if values and token in (_IN, _NOT_IN):
            token = _IDENTIFIER
        return token, literal

    def _next(self, values: bool = True) -> tuple[str, str]:
        item = self._peek(values)
        self._position += 1
        return item

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            token, literal = self._peek()
            if token == _END:
                return requirements
            if token not in (_IDENTIFIER, _BANG):
                raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except SelectorError as error:
                raise SelectorError(f"unable to parse requirement: {error.message}") from None
            token, literal = self._next()
            if token == _END:
                return requirements
            if token != _COMMA:
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            token, literal = self._peek()
            if token not in (_IDENTIFIER, _BANG):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        negated = False
        token, key = self._next()
        if token == _BANG:
            negated = True
            token, key = self._next()
        if token != _IDENTIFIER:
            raise SelectorError(f"found '{key}', expected: identifier")
        key_errors = _label_key_errors(key)
        if key_errors:
            raise _invalid("key", key, key_errors)
        if negated:
            return _requirement(key, DOES_NOT_EXIST, [])
        if self._peek()[0] in (_END, _COMMA):
            return _requirement(key, EXISTS, [])
        token, literal = self._next(values=False)
        operator = _OPERATOR_TOKENS.get(token)
        if operator is None:
            raise SelectorError(f"found '{literal}', expected: in, notin, =, ==, !=, gt, lt")
        values = self._set_values() if operator in _SET_OPERATORS else self._exact_value()
        return _requirement(key, operator, values)

    def _set_values(self) -> list[str]:
        token, literal = self._next()
        if token != _OPEN:
            raise SelectorError(f"found '{literal}' expected: '('")
        token, literal = self._peek()
        if token == _CLOSE:
            self._next()
            return [""]
        if token not in (_IDENTIFIER, _COMMA):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        # Empty values are legal: "a in (x,)", "a in (,x)" and "a in (,)" all include "".
        values: set[str] = set()
        expect_value = True
        while True:
            token, literal = self._next()
            if token == _IDENTIFIER and expect_value:
                values.add(literal)
                expect_value = False
            elif token == _COMMA:
                if expect_value:
                    values.add("")
                expect_value = True
            elif token == _CLOSE:
                if expect_value:
                    values.add("")
                return sorted(values)
            else:
                expected = "',', or identifier" if expect_value else "',' or ')'"
                raise SelectorError(f"found '{literal}', expected: {expected}")

    def _exact_value(self) -> list[str]:
        token, literal = self._peek()
        if token in (_END, _COMMA):
            return [""]
        token, literal = self._next()
        if token != _IDENTIFIER:
            raise SelectorError(f"found '{literal}', expected: identifier")
        return [literal]


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the label selector string grammar (``labels.Parse``).

    ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a`` (exists), ``!a`` (does not
    exist), ``a>1`` / ``a<1`` (integer comparison), joined by ``,`` (AND). The empty string selects
    everything.
    """
    return LabelSelector(_sorted_requirements(_LabelParser(text).parse()))


_EXPRESSION_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` object (``metav1.LabelSelectorAsSelector``).

    ``None`` (a nil selector) selects **nothing**; ``{}`` or a selector with neither ``matchLabels``
    nor ``matchExpressions`` selects **everything**. Callers for which a missing selector means
    "everything" (e.g. a NetworkPolicy-like default) must check for None themselves.
    """
    if selector is None:
        return LabelSelector.nothing()
    if not isinstance(selector, Mapping):
        raise SelectorError(f"label selector must be an object, not {type(selector).__name__}")
    match_labels = selector.get("matchLabels") or {}
    match_expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels must be an object of label keys to values")
    if not isinstance(match_expressions, list):
        raise SelectorError("matchExpressions must be a list")
    if not match_labels and not match_expressions:
        return LabelSelector.everything()
    requirements = []
    for key, value in match_labels.items():
        if not isinstance(value, str):
            raise _invalid(f"matchLabels[{key}]", value, ["must be a string"])
        requirements.append(_requirement(str(key), EQUALS, [value]))
    for expression in match_expressions:
        if not isinstance(expression, Mapping):
            raise SelectorError("each matchExpressions item must be an object")
        operator_name = expression.get("operator")
        operator = _EXPRESSION_OPERATORS.get(operator_name) if isinstance(operator_name, str) else None
        if operator is None:
            raise SelectorError(f'"{operator_name}" is not a valid label selector operator')
        values = expression.get("values") or []
        if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
            raise SelectorError("matchExpressions values must be a list of strings")
        requirements.append(_requirement(str(expression.get("key", "")), operator, list(values)))
    return LabelSelector(_sorted_requirements(requirements))


# --------------------------------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------------------------------


def _escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(value: str) -> str:
    """Undo ``\\\\``, ``\\,`` and ``\\=``; bare ``,`` or ``=`` and unknown escapes are errors."""
    result = []
    escaped = False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{char}")
            result.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {char}")
        else:
            result.append(char)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(result)


def _split_terms(text: str) -> list[str]:
    terms = []
    start = 0
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


@dataclass(frozen=True)
class FieldRequirement:
    """``field=value`` / ``field==value`` (``operator`` ``=``/``==``) or ``field!=value``."""

    field: str
    operator: str
    value: str

    def matches_value(self, actual: str) -> bool:
        return (actual == self.value) != (self.operator == NOT_EQUALS)

    def __str__(self) -> str:
        # Go prints both equality spellings as "=".
        operator = NOT_EQUALS if self.operator == NOT_EQUALS else EQUALS
        return f"{self.field}{operator}{_escape_field_value(self.value)}"


def _field_value(obj: Mapping[str, Any], field: str) -> str:
    node: Any = obj
    for part in field.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
    if node is None or isinstance(node, (Mapping, list)):
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


@dataclass(frozen=True)
class FieldSelector:
    """An AND of field requirements; the empty selector selects everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    @classmethod
    def everything(cls) -> FieldSelector:
        return cls()

    @property
    def is_everything(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Match an object by resolving each dotted field path in it.

        A missing field, ``null``, or an object/list value compares as ``""`` (so ``spec.nodeName=``
        selects unscheduled pods); booleans read ``true``/``false`` and numbers their decimal form.
        """
        return all(r.matches_value(_field_value(obj, r.field)) for r in self.requirements)

    def matches_fields(self, fields: Mapping[str, str]) -> bool:
        """Match precomputed field values (the server's per-kind field set); absent means ``""``."""
        return all(r.matches_value(fields.get(r.field, "")) for r in self.requirements)

    def fields(self) -> set[str]:
        return {requirement.field for requirement in self.requirements}

    def requires_exact_match(self, field: str) -> str | None:
        for requirement in self.requirements:
            if requirement.field == field and requirement.operator != NOT_EQUALS:
                return requirement.value
        return None

    def exact_name(self) -> str | None:
        """The object name pinned by ``metadata.name=<name>``, as kopf and ``kubectl get NAME -w`` send."""
        return self.requires_exact_match("metadata.name")

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a field selector (``fields.ParseSelector``).

    Terms are ``field=value``, ``field==value`` or ``field!=value`` joined by ``,``; values escape
    ``\\``, ``,`` and ``=`` with a backslash. Like the apiserver, whitespace is not trimmed: it is part
    of the field name or value. Empty terms are ignored, so ``""`` selects everything.
    """
    requirements = []
    for term in sorted(_split_terms(text)):
        if not term:
            continue
        for index in range(len(term)):
            operator = next((op for op in ("!=", "==", "=") if term.startswith(op, index)), None)
            if operator is not None:
                field, raw_value = term[:index], term[index + len(operator) :]
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        requirements.append(FieldRequirement(field, operator, _unescape_field_value(raw_value)))
    return FieldSelector(tuple(requirements))

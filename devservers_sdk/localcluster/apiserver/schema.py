"""Structural-schema handling for custom resources, as kube-apiserver's apiextensions code does it.

A real cluster runs every custom-resource write through the same pipeline, and operators (kopf), the
``kubernetes`` client and kubectl all depend on its observable results:

1. **pruning** drops fields the CRD schema does not declare (unless ``x-kubernetes-preserve-unknown-fields``
   is set at that level); the dropped paths feed ``fieldValidation=Strict|Warn``;
2. **defaulting** fills absent fields from ``default`` and drops non-nullable ``null`` values that have no
   default (``PruneNonNullableNullsWithoutDefaults``);
3. **validation** checks the result against the OpenAPI v3 schema and reports one cause per failure,
   worded exactly as kube-openapi + ``apimachinery/pkg/util/validation/field`` word them (so
   ``kubectl apply`` prints the same ``The Widget "w" is invalid: spec.replicas: Invalid value: ...``);
4. on CRD create/update, the schema itself must be **structural** and its defaults must validate.

Metadata at the root is never pruned or schema-validated here: the server validates it as ObjectMeta.
Everything is pure data-in/data-out; callers own I/O and Status shaping (see ``errors.invalid``).
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeGuard

from devservers_sdk.localcluster.apiserver import cel
from devservers_sdk.localcluster.apiserver.errors import cause
from devservers_sdk.localcluster.apiserver.store import copy_document

PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
EMBEDDED = "x-kubernetes-embedded-resource"
VALIDATIONS = "x-kubernetes-validations"

# Always kept at the root and at embedded resources: the server handles TypeMeta/ObjectMeta itself.
_META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})

# field.ErrorType values, as they appear in a Status cause's "reason".
REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
TYPE_INVALID = "FieldValueTypeInvalid"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"


# --- value rendering, as Go's field.Error.ErrorBody prints bad values ------------------------------------


def go_float(value: float) -> str:
    """``fmt.Sprint(float64)``: shortest digits, exponent form from 1e+06 or below 1e-04."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent
    neg = "-" if sign else ""
    exp10 = point - 1
    if exp10 < -4 or exp10 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{neg}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if point <= 0:
        return f"{neg}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{neg}{digits}{'0' * (point - len(digits))}"
    return f"{neg}{digits[:point]}.{digits[point:]}"


def _go_quote(text: str) -> str:
    # strconv.Quote and JSON string escaping agree on everything a CRD value realistically contains.
    return json.dumps(text, ensure_ascii=False)


def _json(value: Any) -> str:
    # Go's json.Marshal sorts map keys and uses no spaces.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def render_value(value: Any) -> str:
    """A bad value the way ``field.Error`` prints it: %v for numbers/bools, %q for strings, else JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return _go_quote(value)
    return _json(value)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_equal(left: Any, right: Any) -> bool:
    """Equality of decoded JSON values: 1 == 1.0, but true != 1."""
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(_json_equal(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


# --- string formats that kube-apiserver keeps for CRDs (StripUnsupportedFormatsPostProcess) ---------------

_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$"
)
_DURATION_GO = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_DURATION_WORDS = re.compile(
    r"^(\d+\s*(ns|us|µs|ms|s|m|h|d|w|nanoseconds?|microseconds?|milliseconds?|seconds?|minutes?"
    r"|hours?|days?|weeks?)\s*)+$"
)
_UUID = r"[0-9a-f]{8}-?[0-9a-f]{4}-?%s[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}"
_FORMAT_PATTERNS = {
    "uuid": re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.IGNORECASE),
    "uuid3": re.compile("^" + _UUID % "3" + "$", re.IGNORECASE),
    "uuid4": re.compile("^" + _UUID % "4" + "$", re.IGNORECASE),
    "uuid5": re.compile("^" + _UUID % "5" + "$", re.IGNORECASE),
    "email": re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    "hostname": re.compile(
        r"^(?=.{1,253}$)[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
        r"(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$"
    ),
    "mac": re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$"),
    "hexcolor": re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"),
    "rgbcolor": re.compile(r"^rgb\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*\)$"),
    "ssn": re.compile(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"),
    "bsonobjectid": re.compile(r"^[0-9a-fA-F]{24}$"),
}


def _valid_date_time(text: str) -> bool:
    match = _DATE_TIME.match(text)
    if not match:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


def _valid_date(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _valid_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _valid_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _valid_byte(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda text: pattern.match(text) is not None


_FORMAT_CHECKS: dict[str, Callable[[str], bool]] = {
    "date-time": _valid_date_time,
    "datetime": _valid_date_time,
    "date": _valid_date,
    "ipv4": lambda text: _valid_ip(text, 4),
    "ipv6": lambda text: _valid_ip(text, 6),
    "cidr": _valid_cidr,
    "byte": _valid_byte,
    "duration": lambda text: bool(_DURATION_GO.match(text) or _DURATION_WORDS.match(text)),
    "uri": lambda text: not any(c.isspace() for c in text),
    **{name: _matches(pattern) for name, pattern in _FORMAT_PATTERNS.items()},
}


# --- validation --------------------------------------------------------------------------------------------


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _where(path: str) -> str:
    # kube-openapi names the offending value "<path> in body"; at the root the name is empty, which leaves
    # the real server's message with a double space after "Invalid value: ...:".
    return f"{path} in body"


def _compile_pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


_KIND_DETAIL = (
    "may have mixed case, but should otherwise match: a lowercase RFC 1035 label must consist of lower "
    "case alphanumeric characters or '-', start with an alphabetic character, and end with an "
    "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
    "'[a-z]([-a-z0-9]*[a-z0-9])?')"
)


class _Validator:
    """One pass over an object; collects causes in the order kube-openapi's validators produce them."""

    def __init__(self) -> None:
        self.causes: list[dict[str, str]] = []
        self.rules: list[tuple[dict[str, Any], Any, str]] = []  # run after the schema pass, as the server does

    def add(self, path: str, reason: str, body: str) -> None:
        entry = cause(path, body, reason)
        if entry not in self.causes:  # field.ErrorList.ToAggregate drops duplicates too
            self.causes.append(entry)

    def invalid(self, path: str, value: Any, detail: str, reason: str = INVALID) -> None:
        self.add(path, reason, f"Invalid value: {render_value(value)}: {detail}")

    def type_error(self, path: str, expected: str, bad: str) -> None:
        self.invalid(path, bad, f"{_where(path)} must be of type {expected}: {_go_quote(bad)}", TYPE_INVALID)

    def validate(self, schema: dict[str, Any], value: Any, path: str, *, root: bool = False) -> None:
        if not isinstance(schema, dict):
            return
        expected = _expected_types(schema)
        if value is None:
            if expected and not schema.get("nullable", False):
                self.type_error(path, ",".join(expected), "null")
            return

        actual = _type_name(value)
        type_ok = not expected or actual in expected
        if not type_ok and actual == "number" and "integer" in expected and float(value).is_integer():
            type_ok = True
        if not type_ok and actual == "integer" and "number" in expected:
            type_ok = True
        if not type_ok:
            self.type_error(path, ",".join(expected), actual)
            if actual == "number" and schema.get("type") == "integer":
                # kube-openapi's number validator checks the value against the declared type's range as
                # well, and reports it without a field (shown as "<nil>").
                fmt = schema.get("format")
                wanted = f"integer with format {fmt}" if fmt in ("int32", "int64") else "integer (default format)"
                self.invalid("<nil>", "", f"Checked value must be of type {wanted} in {path}")
            self._enum(schema, value, path)
            return

        self._junctors(schema, value, path)
        if isinstance(value, str):
            self._string(schema, value, path)
        elif _is_number(value):
            self._number(schema, value, path)
        elif isinstance(value, list):
            self._array(schema, value, path)
        self._enum(schema, value, path)
        if isinstance(value, dict):
            self._object(schema, value, path)
            if schema.get(EMBEDDED) and not root:
                self._embedded(value, path)
        if schema.get(VALIDATIONS):
            self.rules.append((schema, value, path))

    def run_rules(self, schema: dict[str, Any]) -> None:
        """The CEL rules, after every schema error is known: apiextensions-apiserver skips them all when one
        of those errors could make their cost unbounded or their input ill-typed (``hasBlockingErr``), and says
        so with a cause without a field, which kubectl prints as ``<nil>``."""
        if not _has_rules(schema):
            return
        if any(entry["reason"] in _BLOCKING for entry in self.causes):
            self.invalid("<nil>", None, "some validation rules were not checked because the object was invalid; "
                         "correct the existing errors to complete validation")
            return
        for node, value, path in self.rules:
            self._rules(node, value, path)

    def _rules(self, schema: dict[str, Any], value: Any, path: str) -> None:
        # x-kubernetes-validations, with the emulator's CEL subset. Transition rules (those that read
        # oldSelf) need the stored object, which this validator does not see: they are not evaluated.
        shown = schema.get("type") or _type_name(value)
        for rule in schema[VALIDATIONS]:
            program = _rule_program(str(rule.get("rule", "")))
            if program.references("oldSelf"):
                continue
            where = f"{path}.{rule['fieldPath'].lstrip('.')}" if rule.get("fieldPath") else path
            try:
                outcome = program.evaluate({"self": value})
            except cel.CelEvalError as exc:
                self.invalid(where, shown, f"{_rule_message(rule)}: {exc}")
                continue
            if outcome is True:
                continue
            message = _rule_message(rule)
            reason = rule.get("reason") or INVALID
            if reason == "FieldValueForbidden":
                self.add(where, reason, f"Forbidden: {message}")
            elif reason == REQUIRED:
                self.add(where, reason, f"Required value: {message}")
            else:
                self.invalid(where, shown, message, reason)

    def _enum(self, schema: dict[str, Any], value: Any, path: str) -> None:
        allowed = schema.get("enum")
        if not allowed or any(_json_equal(value, candidate) for candidate in allowed):
            return
        supported = ", ".join(
            _go_quote(option if isinstance(option, str) else _json(option)) for option in allowed
        )
        self.add(
            path, NOT_SUPPORTED, f"Unsupported value: {render_value(value)}: supported values: {supported}"
        )

    def _string(self, schema: dict[str, Any], value: str, path: str) -> None:
        max_length = schema.get("maxLength")
        if max_length is not None and len(value) > max_length:
            unit = "byte" if max_length == 1 else "bytes"
            self.add(path, TOO_LONG, f"Too long: may not be more than {max_length} {unit}")
        min_length = schema.get("minLength")
        if min_length is not None and len(value) < min_length:
            self.invalid(path, value, f"{_where(path)} should be at least {min_length} chars long")
        pattern = schema.get("pattern")
        if pattern:
            compiled = _compile_pattern(pattern)
            if compiled is not None and not compiled.search(value):
                self.invalid(path, value, f"{_where(path)} should match '{pattern}'")
        fmt = schema.get("format")
        check = _FORMAT_CHECKS.get(fmt) if isinstance(fmt, str) else None
        if check is not None and not check(value):
            self.invalid(
                path, value, f"{_where(path)} must be of type {fmt}: {_go_quote(value)}", TYPE_INVALID
            )

    def _number(self, schema: dict[str, Any], value: float, path: str) -> None:
        # kube-openapi compares (and reports) numbers as float64, hence "1e+07" for large integers.
        data = float(value)
        factor = schema.get("multipleOf")
        if _is_number(factor) and factor > 0:
            quotient = data / factor
            if not math.isclose(quotient, round(quotient), rel_tol=0, abs_tol=1e-9):
                self.invalid(path, data, f"{_where(path)} should be a multiple of {go_float(float(factor))}")
        maximum = schema.get("maximum")
        if _is_number(maximum):
            exclusive = bool(schema.get("exclusiveMaximum"))
            if data > maximum or (exclusive and data == maximum):
                words = "less than" if exclusive else "less than or equal to"
                self.invalid(path, data, f"{_where(path)} should be {words} {go_float(float(maximum))}")
        minimum = schema.get("minimum")
        if _is_number(minimum):
            exclusive = bool(schema.get("exclusiveMinimum"))
            if data < minimum or (exclusive and data == minimum):
                words = "greater than" if exclusive else "greater than or equal to"
                self.invalid(path, data, f"{_where(path)} should be {words} {go_float(float(minimum))}")

    def _array(self, schema: dict[str, Any], value: list[Any], path: str) -> None:
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                self.validate(items, item, f"{path}[{index}]")
        min_items = schema.get("minItems")
        if min_items is not None and len(value) < min_items:
            self.invalid(path, len(value), f"{_where(path)} should have at least {min_items} items")
        max_items = schema.get("maxItems")
        if max_items is not None and len(value) > max_items:
            noun = "item" if max_items == 1 else "items"
            self.add(path, TOO_MANY, f"Too many: {len(value)}: must have at most {max_items} {noun}")
        if schema.get("uniqueItems"):
            seen: list[Any] = []
            for item in value:
                if any(_json_equal(item, other) for other in seen):
                    self.invalid(path, "", f"{_where(path)} shouldn't contain duplicates")
                    break
                seen.append(item)

    def _object(self, schema: dict[str, Any], value: dict[str, Any], path: str) -> None:
        # As in kube-openapi, a property-count failure stops validation of this object's contents.
        min_properties = schema.get("minProperties")
        if min_properties is not None and len(value) < min_properties:
            self.invalid(path, len(value), f"{_where(path)} should have at least {min_properties} properties")
            return
        max_properties = schema.get("maxProperties")
        if max_properties is not None and len(value) > max_properties:
            noun = "item" if max_properties == 1 else "items"
            self.add(path, TOO_MANY, f"Too many: {len(value)}: must have at most {max_properties} {noun}")
            return
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                self.validate(properties[key], item, _child(path, key))
            elif isinstance(additional, dict):
                self.validate(additional, item, f"{path}.{key}")
        for key in schema.get("required") or ():
            if key not in value:
                self.add(f"{path}.{key}" if path else key, REQUIRED, "Required value")

    def _junctors(self, schema: dict[str, Any], value: Any, path: str) -> None:
        # Composite failures carry no field name, so they surface at the root path, shown as "<nil>".
        where = _go_quote(path)
        any_of = schema.get("anyOf")
        if any_of:
            outcomes = [self._probe(sub, value, path) for sub in any_of]
            if not any(not errors for errors in outcomes):
                self.invalid("<nil>", "", f"{where} must validate at least one schema (anyOf)")
                self._extend(min(outcomes, key=len))
        one_of = schema.get("oneOf")
        if one_of:
            outcomes = [self._probe(sub, value, path) for sub in one_of]
            valid = sum(1 for errors in outcomes if not errors)
            if valid != 1:
                found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
                self.invalid("<nil>", "", f"{where} must validate one and only one schema (oneOf). {found}")
                if valid == 0:
                    self._extend(min(outcomes, key=len))
        all_of = schema.get("allOf")
        if all_of:
            outcomes = [self._probe(sub, value, path) for sub in all_of]
            for errors in outcomes:
                self._extend(errors)
            passed = sum(1 for errors in outcomes if not errors)
            if passed != len(all_of):
                suffix = ". None validated" if passed == 0 else ""
                self.invalid("<nil>", "", f"{where} must validate all the schemas (allOf){suffix}")
        negated = schema.get("not")
        if isinstance(negated, dict) and not self._probe(negated, value, path):
            self.invalid("<nil>", "", f"{where} must not validate the schema (not)")

    @staticmethod
    def _probe(schema: dict[str, Any], value: Any, path: str) -> list[dict[str, str]]:
        probe = _Validator()
        probe.validate(schema, value, path)
        return probe.causes

    def _extend(self, causes: list[dict[str, str]]) -> None:
        for entry in causes:
            if entry not in self.causes:
                self.causes.append(entry)

    def _embedded(self, value: dict[str, Any], path: str) -> None:
        # objectmeta.Validate: an embedded object must look like a Kubernetes object.
        for key in ("apiVersion", "kind"):
            if key not in value:
                self.add(_child(path, key), REQUIRED, "Required value: must not be empty")
        api_version = value.get("apiVersion")
        if "apiVersion" in value:
            where = _child(path, "apiVersion")
            if not isinstance(api_version, str):
                self.invalid(where, api_version, "must be a string")
            elif not api_version:
                self.invalid(where, api_version, "must not be empty")
            elif api_version.count("/") > 1:
                self.invalid(where, api_version, f"unexpected GroupVersion string: {api_version}")
        kind = value.get("kind")
        if "kind" in value:
            where = _child(path, "kind")
            if not isinstance(kind, str):
                self.invalid(where, kind, "must be a string")
            elif not kind:
                self.invalid(where, kind, "must not be empty")
            elif not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", kind.lower()) or len(kind) > 63:
                self.invalid(where, kind, _KIND_DETAIL)


def _rule_message(rule: dict[str, Any]) -> str:
    return str(rule.get("message") or f"failed rule: {rule.get('rule')}")


@functools.lru_cache(maxsize=256)
def _rule_program(source: str) -> cel.Program:
    return cel.compile_expression(source, declared=("self", "oldSelf"))


def _expected_types(schema: dict[str, Any]) -> tuple[str, ...]:
    if schema.get(INT_OR_STRING):
        return ("integer", "string")
    kind = schema.get("type")
    return (kind,) if isinstance(kind, str) and kind else ()


_BLOCKING = frozenset({NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY, TYPE_INVALID})


def _has_rules(schema: Any) -> bool:
    if isinstance(schema, dict):
        return bool(schema.get(VALIDATIONS)) or any(_has_rules(value) for value in schema.values())
    if isinstance(schema, list):
        return any(_has_rules(item) for item in schema)
    return False


def validate(schema: dict[str, Any], obj: Any) -> list[dict[str, str]]:
    """Validate a whole custom resource against its CRD's ``openAPIV3Schema``.

    Returns Status causes (``{"reason", "message", "field"}``) worded like the real apiserver; an empty
    list means the object is valid. Run ``prune`` and ``apply_defaults`` first, as the server does.
    """
    validator = _Validator()
    validator.validate(schema or {}, obj, "", root=True)
    validator.run_rules(schema or {})
    return validator.causes


# --- defaulting --------------------------------------------------------------------------------------------


def _field_schema(schema: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    if not isinstance(schema, dict):
        return None
    properties = schema.get("properties") or {}
    if key in properties:
        return properties[key]
    additional = schema.get("additionalProperties")
    return additional if isinstance(additional, dict) else None


def _drop_nonnullable_nulls(value: Any, schema: dict[str, Any] | None) -> None:
    # A null for a non-nullable field is removed rather than rejected, unless a default will replace it.
    if isinstance(value, dict):
        for key in list(value):
            sub = _field_schema(schema, key)
            if value[key] is None and sub is not None and not sub.get("nullable") and "default" not in sub:
                del value[key]
            else:
                _drop_nonnullable_nulls(value[key], sub)
    elif isinstance(value, list):
        items = schema.get("items") if isinstance(schema, dict) else None
        for item in value:
            _drop_nonnullable_nulls(item, items if isinstance(items, dict) else None)


def _replaces(value: Any, schema: dict[str, Any] | None) -> bool:
    return value is None and isinstance(schema, dict) and not schema.get("nullable") and "default" in schema


def _default(value: Any, schema: dict[str, Any] | None) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, sub in properties.items():
            if (
                isinstance(sub, dict)
                and "default" in sub
                and (key not in value or _replaces(value[key], sub))
            ):
                value[key] = copy_document(sub["default"])
        additional = schema.get("additionalProperties")
        for key in value:
            if key in properties:
                _default(value[key], properties[key])
            elif isinstance(additional, dict):
                if _replaces(value[key], additional):
                    value[key] = copy_document(additional["default"])
                _default(value[key], additional)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                if _replaces(item, items):
                    value[index] = copy_document(items["default"])
                _default(value[index], items)


def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """Structural defaulting: a new object with absent fields set from ``default`` (deep-copied).

    Defaults apply only inside objects that exist (a default on ``spec.x`` needs ``spec``), recurse into
    values that were just defaulted, and replace a non-nullable ``null``. Non-nullable nulls without a
    default are dropped, as ``PruneNonNullableNullsWithoutDefaults`` does before defaulting.
    """
    result = copy_document(obj)
    _drop_nonnullable_nulls(result, schema)
    _default(result, schema)
    return result


# --- pruning -----------------------------------------------------------------------------------------------


class _Pruner:
    def __init__(self) -> None:
        self.dropped: list[str] = []

    def prune(self, value: Any, schema: dict[str, Any] | None, path: str, embedded: bool = False) -> None:
        if isinstance(schema, dict) and schema.get(PRESERVE):
            self._descend_preserved(value, schema, path, embedded)
            return
        if isinstance(value, dict):
            embedded = embedded or bool(isinstance(schema, dict) and schema.get(EMBEDDED))
            properties = (schema or {}).get("properties") or {}
            additional = (schema or {}).get("additionalProperties")
            for key in list(value):
                if embedded and key in _META_FIELDS:
                    continue
                if key in properties:
                    self.prune(value[key], properties[key], _child(path, key))
                elif additional is not None and additional is not False:
                    self.prune(
                        value[key], additional if isinstance(additional, dict) else None, _child(path, key)
                    )
                else:
                    self.dropped.append(_child(path, key))
                    del value[key]
        elif isinstance(value, list):
            items = (schema or {}).get("items")
            for index, item in enumerate(value):
                self.prune(item, items if isinstance(items, dict) else None, f"{path}[{index}]")

    def _descend_preserved(
        self, value: Any, schema: dict[str, Any], path: str, embedded: bool = False
    ) -> None:
        # Unknown fields stay, but declared ones are still pruned below this level.
        if isinstance(value, dict):
            properties = schema.get("properties") or {}
            additional = schema.get("additionalProperties")
            for key, item in value.items():
                if (embedded or schema.get(EMBEDDED)) and key in _META_FIELDS:
                    continue
                if key in properties:
                    self.prune(item, properties[key], _child(path, key))
                elif isinstance(additional, dict):
                    self.prune(item, additional, _child(path, key))
        elif isinstance(value, list):
            items = schema.get("items")
            for index, item in enumerate(value):
                if isinstance(items, dict):
                    self._descend_preserved(item, items, f"{path}[{index}]")


def prune(schema: dict[str, Any], obj: Any) -> tuple[Any, list[str]]:
    """Drop fields the schema does not declare; returns the pruned copy and the sorted dropped paths.

    The root behaves as an embedded resource: ``apiVersion``, ``kind`` and ``metadata`` are always kept
    and metadata is never looked into. The paths (``spec.foo``, ``spec.items[0].bar``) are what the server
    reports as ``unknown field "spec.foo"`` for ``fieldValidation=Strict`` or as a Warning header.
    """
    result = copy_document(obj)
    pruner = _Pruner()
    pruner.prune(result, schema or {}, "", embedded=True)
    return result, sorted(pruner.dropped)


# --- structural schema checks on CRD create/update ------------------------------------------------------

_NESTED_FORBIDDEN = (
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    (PRESERVE, "must be false to be structural"),
    (EMBEDDED, "must be false to be structural"),
    (INT_OR_STRING, "must be false to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
)
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def _key(path: str, name: str) -> str:
    return f"{path}.properties[{name}]"


def _is_int_or_string_any_of(any_of: Any) -> bool:
    return isinstance(any_of, list) and len(any_of) == 2 and any_of == _INT_OR_STRING_ANY_OF


class _StructuralChecker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def required(self, path: str, detail: str) -> None:
        self.errors.append(f"{path}: Required value: {detail}")

    def forbidden(self, path: str, detail: str) -> None:
        self.errors.append(f"{path}: Forbidden: {detail}")

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.errors.append(f"{path}: Invalid value: {render_value(value)}: {detail}")

    def check(self, schema: Any, path: str, level: str) -> None:
        if not isinstance(schema, dict):
            self.invalid(path, schema, "must be an object")
            return
        kind = schema.get("type", "")
        if "$ref" in schema:
            self.forbidden(f"{path}.$ref", "$ref is not supported")
        if kind == "array" and "items" not in schema:
            self.required(f"{path}.items", "must be specified")
        if isinstance(schema.get("items"), dict):
            self.check(schema["items"], f"{path}.items", "item")
        elif isinstance(schema.get("items"), list):
            self.forbidden(f"{path}.items", "items must be a schema object and not an array")
        for name, sub in (schema.get("properties") or {}).items():
            self.check(sub, _key(path, name), "field")
        additional = schema.get("additionalProperties")
        if additional is not None:
            if level == "root":
                self.forbidden(f"{path}.additionalProperties", "must not be used at the root")
            if additional is False:
                self.forbidden(f"{path}.additionalProperties", "additionalProperties cannot be set to false")
            if schema.get("properties") and additional is not False:
                self.forbidden(
                    f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive"
                )
            if isinstance(additional, dict):
                self.check(additional, f"{path}.additionalProperties", "field")
        if schema.get(INT_OR_STRING) and schema.get(PRESERVE):
            self.invalid(f"{path}.{PRESERVE}", True, "must be false if x-kubernetes-int-or-string is true")
        if schema.get(INT_OR_STRING) and schema.get(EMBEDDED):
            self.invalid(f"{path}.{EMBEDDED}", True, "must be false if x-kubernetes-int-or-string is true")
        if PRESERVE in schema and schema[PRESERVE] is not True:
            self.invalid(f"{path}.{PRESERVE}", schema[PRESERVE], "must be true or undefined")
        if schema.get("uniqueItems") is True:
            self.forbidden(
                f"{path}.uniqueItems",
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        if schema.get(INT_OR_STRING) and kind:
            self.invalid(f"{path}.type", kind, "must be empty if x-kubernetes-int-or-string is true")

        self._junctors(schema, path, level)

        if schema.get(EMBEDDED) and kind != "object":
            if not kind:
                self.required(f"{path}.type", "must be object if x-kubernetes-embedded-resource is true")
            else:
                self.invalid(f"{path}.type", kind, "must be object if x-kubernetes-embedded-resource is true")
        elif not kind and not schema.get(INT_OR_STRING) and not schema.get(PRESERVE):
            detail = {
                "root": "must not be empty at the root",
                "item": "must not be empty for specified array items",
                "field": "must not be empty for specified object fields",
            }[level]
            self.required(f"{path}.type", detail)
        if schema.get(EMBEDDED) and additional is not None:
            self.forbidden(
                f"{path}.additionalProperties", "must not be used if x-kubernetes-embedded-resource is set"
            )
        if level == "root" and kind and kind != "object":
            self.invalid(f"{path}.type", kind, "must be object at the root")
        self._meta_fields(schema, path, level)
        if schema.get(EMBEDDED) and not schema.get(PRESERVE) and not schema.get("properties"):
            self.required(
                f"{path}.properties",
                "must not be empty if x-kubernetes-embedded-resource is true without "
                "x-kubernetes-preserve-unknown-fields",
            )
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and pattern:
            try:
                re.compile(pattern)
            except re.error as err:
                self.invalid(
                    f"{path}.pattern", pattern, f"must be a valid regular expression, but isn't: {err}"
                )
        for index, rule in enumerate(schema.get(VALIDATIONS) or []):
            source = rule.get("rule") if isinstance(rule, dict) else None
            where = f"{path}.{VALIDATIONS}[{index}].rule"
            if not isinstance(source, str) or not source.strip():
                self.required(where, "rule is not specified")
                continue
            try:
                program = _rule_program(source)
            except cel.CelCompileError as err:
                self.invalid(where, source, f"compilation failed: {err}")
                continue
            if program.evident_type not in (None, "bool"):
                self.invalid(where, source, "compilation failed: rule must evaluate to bool")

    def _meta_fields(self, schema: dict[str, Any], path: str, level: str) -> None:
        properties = schema.get("properties") or {}
        if level != "root" and not schema.get(EMBEDDED):
            return
        for name, expected in (("kind", "string"), ("apiVersion", "string"), ("metadata", "object")):
            sub = properties.get(name)
            if isinstance(sub, dict) and sub.get("type", "") != expected:
                self.invalid(f"{_key(path, name)}.type", sub.get("type", ""), f"must be {expected}")
        metadata = properties.get("metadata")
        if level == "root" and isinstance(metadata, dict):
            # Only name/generateName may be restricted; anything else would fight ObjectMeta validation.
            meta_props = metadata.get("properties") or {}
            extra_keys = set(metadata) - {"type", "properties", "default"}
            if extra_keys or not set(meta_props) <= {"name", "generateName"}:
                self.forbidden(
                    _key(path, "metadata"),
                    "must not specify anything other than name and generateName, "
                    "but metadata is implicitly specified",
                )

    def _junctors(self, schema: dict[str, Any], path: str, level: str) -> None:
        skip_any_of = _is_int_or_string_any_of(schema.get("anyOf"))
        all_of = schema.get("allOf") or []
        skip_first_all_of_any_of = bool(
            all_of and isinstance(all_of[0], dict) and _is_int_or_string_any_of(all_of[0].get("anyOf"))
        )
        if not skip_any_of:
            for index, sub in enumerate(schema.get("anyOf") or []):
                self._nested(sub, f"{path}.anyOf[{index}]", skip_any_of=False)
        for index, sub in enumerate(all_of):
            self._nested(sub, f"{path}.allOf[{index}]", skip_any_of=skip_first_all_of_any_of and index == 0)
        for index, sub in enumerate(schema.get("oneOf") or []):
            self._nested(sub, f"{path}.oneOf[{index}]", skip_any_of=False)
        if isinstance(schema.get("not"), dict):
            self._nested(schema["not"], f"{path}.not", skip_any_of=False)

    def _nested(self, schema: Any, path: str, *, skip_any_of: bool) -> None:
        # Inside anyOf/allOf/oneOf/not only value validations are allowed: the structure lives outside.
        if not isinstance(schema, dict):
            return
        nested = dict(schema)
        if skip_any_of:
            nested.pop("anyOf", None)
        for name, detail in _NESTED_FORBIDDEN:
            present = nested.get(name)
            if present not in (None, False, "", []):
                self.forbidden(f"{path}.{name}", detail)
        for name, sub in (nested.get("properties") or {}).items():
            if name == "metadata":
                self.forbidden(_key(path, name), "must not be specified in a nested context")
            self._nested(sub, _key(path, name), skip_any_of=False)
        if isinstance(nested.get("items"), dict):
            self._nested(nested["items"], f"{path}.items", skip_any_of=False)
        for junctor in ("anyOf", "allOf", "oneOf"):
            for index, sub in enumerate(nested.get(junctor) or []):
                self._nested(sub, f"{path}.{junctor}[{index}]", skip_any_of=False)
        if isinstance(nested.get("not"), dict):
            self._nested(nested["not"], f"{path}.not", skip_any_of=False)


def _default_errors(schema: Any, path: str) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    if "default" in schema:
        default = schema["default"]
        where = f"{path}.default"
        _, dropped = _prune_value(schema, default)
        if dropped:
            yield f"{where}: Invalid value: {render_value(default)}: must not have unknown fields"
        for entry in validate(schema, default):
            # Errors without a field name (including composite anyOf/oneOf ones) land on the default itself.
            field = entry["field"]
            location = f"{where}.{field}" if field and field != "<nil>" else where
            yield f"{location}: {entry['message']}"
    if isinstance(schema.get("items"), dict):
        yield from _default_errors(schema["items"], f"{path}.items")
    for name, sub in (schema.get("properties") or {}).items():
        yield from _default_errors(sub, _key(path, name))


def _prune_value(schema: dict[str, Any], value: Any) -> tuple[Any, list[str]]:
    # Defaults are pruned as plain values: only an embedded resource keeps its TypeMeta/ObjectMeta.
    result = copy_document(value)
    pruner = _Pruner()
    pruner.prune(result, schema, "", embedded=bool(schema.get(EMBEDDED)))
    return result, pruner.dropped


def structural_errors(schema: dict[str, Any], *, path: str = "openAPIV3Schema") -> list[str]:
    """Why a CRD's ``openAPIV3Schema`` would be rejected at CRD create/update (empty when acceptable).

    Each message is ``<field path>: <detail>`` as the apiserver prints it; pass ``path`` (e.g.
    ``spec.versions[0].schema.openAPIV3Schema``) to get the exact paths of a 422 on the CRD. Defaults
    are only checked once the schema is structural, as the real server does.
    """
    checker = _StructuralChecker()
    checker.check(schema, path, "root")
    if checker.errors:
        return sorted(set(checker.errors))
    return list(dict.fromkeys(_default_errors(schema, path)))

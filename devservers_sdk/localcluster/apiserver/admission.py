"""ValidatingAdmissionPolicy: the in-process admission kube-apiserver runs on writes (GA in Kubernetes 1.30).

A platform team ships policies as YAML (``operator/deploy/owner-policy.yaml`` is this project's), so the
emulator runs the same YAML instead of a Python stand-in, and a test proves what a real cluster would do:

* **storing** policies and bindings validates them as the real server does: required fields, enums, and
  every CEL expression compiled (``cel.py``; an expression outside the supported subset is refused here
  with ``compilation failed: ...``, as an expression that does not compile is on a real server).
  ``paramKind``/``paramRef`` are refused too, as outside what the emulator supports;
* **matching** a request: the policy's ``matchConstraints`` intersected with the binding's
  ``matchResources`` (resource rules by operation, group, version, resource and subresource, scope and
  resource name; excluded rules; namespace and object label selectors), then ``matchConditions``;
* **evaluating** ``variables`` (lazily), each ``validations[]`` expression, and on failure its
  ``messageExpression``/``message``; evaluation errors follow ``failurePolicy``;
* **answering** like the real dispatcher: the first denial becomes a Status whose reason is the
  validation's ``reason`` (default ``Invalid``, so HTTP 422; ``Forbidden`` is 403) with the message
  ``<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '<policy>' with binding '<binding>'
  denied request: <message>`` and one cause carrying the part after "forbidden: "; a ``Warn`` binding
  adds a ``Warning`` header instead.

The requesting user is the one the bearer token authenticated (``server.py``); the built-in controllers
and the kubelet write as the cluster admin. Policies and bindings themselves are never subject to
policies (the real server exempts them, so a bad policy cannot lock itself in).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import errors
from .cel import CelCompileError, CelError, CelEvalError, LazyVariables, Program, compile_expression
from .errors import StatusError
from .resources import ResourceType
from .selectors import SelectorError, label_selector_from_dict

if TYPE_CHECKING:
    from .api import ClusterAPI

__all__ = ["BINDINGS", "POLICIES", "AdmissionRequest", "PolicyAdmission", "default_binding", "default_policy",
           "validate_binding", "validate_policy"]

GROUP = "admissionregistration.k8s.io"
POLICIES = (GROUP, "validatingadmissionpolicies")
BINDINGS = (GROUP, "validatingadmissionpolicybindings")
_EXEMPT = frozenset({POLICIES, BINDINGS, (GROUP, "validatingwebhookconfigurations"),
                     (GROUP, "mutatingwebhookconfigurations")})

# What a policy's expressions may refer to. `authorizer` exists on a real server; the emulator has no
# authorizer, so an expression using it is refused when the policy is stored rather than guessed at.
_POLICY_ENVIRONMENT = ("object", "oldObject", "request", "params", "namespaceObject", "variables")
_MATCH_CONDITION_ENVIRONMENT = ("object", "oldObject", "request", "params", "namespaceObject")
_OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT", "*")
_REASON_CODES = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}
_ACTIONS = ("Audit", "Deny", "Warn")

Cause = dict[str, str]


@dataclass
class AdmissionRequest:
    """One write, as admission sees it. ``object`` is None for DELETE, ``old_object`` for CREATE."""

    operation: str
    resource: ResourceType
    namespace: str
    name: str
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    user: Mapping[str, Any]
    subresource: str = ""
    dry_run: bool = False
    warnings: list[str] | None = None


# -- storing policies and bindings ------------------------------------------------------------------------


def _default_match(match: Any, *, policy: bool) -> None:
    if not isinstance(match, dict):
        return
    match.setdefault("namespaceSelector", {})
    match.setdefault("objectSelector", {})
    match.setdefault("matchPolicy", "Equivalent")
    for key in ("resourceRules", "excludeResourceRules"):
        for rule in match.get(key) or []:
            if isinstance(rule, dict):
                rule.setdefault("scope", "*")
    if policy:
        match.setdefault("resourceRules", [])


def default_policy(obj: dict[str, Any]) -> None:
    """The server's defaults for a ValidatingAdmissionPolicy (``failurePolicy: Fail``...)."""
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("failurePolicy", "Fail")
        _default_match(spec.get("matchConstraints"), policy=True)


def default_binding(obj: dict[str, Any]) -> None:
    """The server's defaults for a ValidatingAdmissionPolicyBinding's ``matchResources``."""
    spec = obj.get("spec")
    if isinstance(spec, dict):
        _default_match(spec.get("matchResources"), policy=False)


@functools.lru_cache(maxsize=512)
def _program(source: str, environment: tuple[str, ...], variable_names: tuple[str, ...] | None) -> Program:
    try:
        return compile_expression(source, declared=environment, variable_names=variable_names)
    except CelCompileError as exc:
        if "undeclared reference to 'authorizer'" in str(exc):
            raise CelCompileError(f"{exc}: 'authorizer' is outside what the local cluster supports (it has no "
                                  "authorizer)") from None
        raise


def _compile_cause(path: str, source: Any, environment: tuple[str, ...], variable_names: tuple[str, ...] | None,
                   *, must_be: str | None) -> Cause | None:
    if not isinstance(source, str) or not source.strip():
        return errors.cause(path, "Required value: expression is not specified", "FieldValueRequired")
    try:
        program = _program(source, environment, variable_names)
    except CelCompileError as exc:
        return errors.cause(path, f"Invalid value: {json.dumps(source)}: compilation failed: {exc}")
    evident = program.evident_type
    if must_be is not None and evident is not None and evident != must_be:
        return errors.cause(path, f"Invalid value: {json.dumps(source)}: must evaluate to {must_be}")
    return None


def _match_causes(match: Any, path: str, *, rules_required: bool) -> list[Cause]:
    if match is None:
        return [errors.cause(path, "Required value", "FieldValueRequired")] if rules_required else []
    if not isinstance(match, dict):
        return [errors.cause(path, "Invalid value: must be an object")]
    causes: list[Cause] = []
    rules = match.get("resourceRules")
    if rules_required and not rules:
        causes.append(errors.cause(f"{path}.resourceRules", "Required value", "FieldValueRequired"))
    for key in ("resourceRules", "excludeResourceRules"):
        for index, rule in enumerate(match.get(key) or []):
            where = f"{path}.{key}[{index}]"
            if not isinstance(rule, dict):
                causes.append(errors.cause(where, "Invalid value: must be an object"))
                continue
            for part in ("operations", "apiGroups", "apiVersions", "resources"):
                if not rule.get(part):
                    causes.append(errors.cause(f"{where}.{part}", "Required value", "FieldValueRequired"))
            for op_index, operation in enumerate(rule.get("operations") or []):
                if operation not in _OPERATIONS:
                    causes.append(errors.cause(f"{where}.operations[{op_index}]", f"Unsupported value: "
                                               f"{json.dumps(operation)}: supported values: \"*\", \"CONNECT\", "
                                               "\"CREATE\", \"DELETE\", \"UPDATE\"", "FieldValueNotSupported"))
            if rule.get("scope", "*") not in ("*", "Cluster", "Namespaced"):
                causes.append(errors.cause(f"{where}.scope", f"Unsupported value: {json.dumps(rule.get('scope'))}: "
                                           'supported values: "*", "Cluster", "Namespaced"', "FieldValueNotSupported"))
    for key in ("namespaceSelector", "objectSelector"):
        try:
            label_selector_from_dict(match.get(key) or {})
        except SelectorError as exc:
            causes.append(errors.cause(f"{path}.{key}", f"Invalid value: {exc.message}"))
    return causes


def validate_policy(obj: dict[str, Any]) -> list[Cause]:
    """Why the server would refuse to store this ValidatingAdmissionPolicy (empty when it is acceptable)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [errors.cause("spec", "Required value", "FieldValueRequired")]
    causes: list[Cause] = []
    if spec.get("paramKind") is not None:
        causes.append(errors.cause("spec.paramKind", "Forbidden: parameter resources are not supported by the "
                                   "local cluster; write the configuration into the policy's expressions",
                                   "FieldValueForbidden"))
    if spec.get("failurePolicy") not in ("Fail", "Ignore"):
        causes.append(errors.cause("spec.failurePolicy", f"Unsupported value: {json.dumps(spec.get('failurePolicy'))}"
                                   ': supported values: "Fail", "Ignore"', "FieldValueNotSupported"))
    causes.extend(_match_causes(spec.get("matchConstraints"), "spec.matchConstraints", rules_required=True))
    names: list[str] = []
    for index, variable in enumerate(spec.get("variables") or []):
        where = f"spec.variables[{index}]"
        name = variable.get("name") if isinstance(variable, dict) else None
        if not isinstance(name, str) or not name:
            causes.append(errors.cause(f"{where}.name", "Required value", "FieldValueRequired"))
            continue
        if name in names:
            causes.append(errors.cause(f"{where}.name", f"Duplicate value: {json.dumps(name)}", "FieldValueDuplicate"))
        # A variable sees the ones declared before it, as the real server's composition does.
        problem = _compile_cause(f"{where}.expression", variable.get("expression"), _POLICY_ENVIRONMENT,
                                 tuple(names), must_be=None)
        if problem is not None:
            causes.append(problem)
        names.append(name)
    variable_names = tuple(names)
    for index, condition in enumerate(spec.get("matchConditions") or []):
        where = f"spec.matchConditions[{index}]"
        if not isinstance(condition, dict) or not condition.get("name"):
            causes.append(errors.cause(f"{where}.name", "Required value", "FieldValueRequired"))
            continue
        problem = _compile_cause(f"{where}.expression", condition.get("expression"), _MATCH_CONDITION_ENVIRONMENT,
                                 None, must_be="bool")
        if problem is not None:
            causes.append(problem)
    validations = spec.get("validations") or []
    if not validations and not spec.get("auditAnnotations"):
        causes.append(errors.cause("spec.validations", "Required value: validations or auditAnnotations must "
                                   "contain at least one item", "FieldValueRequired"))
    for index, validation in enumerate(validations):
        where = f"spec.validations[{index}]"
        if not isinstance(validation, dict):
            causes.append(errors.cause(where, "Invalid value: must be an object"))
            continue
        for key, must_be in (("expression", "bool"), ("messageExpression", "string")):
            if key == "messageExpression" and key not in validation:
                continue
            problem = _compile_cause(f"{where}.{key}", validation.get(key), _POLICY_ENVIRONMENT, variable_names,
                                     must_be=must_be)
            if problem is not None:
                causes.append(problem)
        message = validation.get("message")
        if isinstance(message, str) and "\n" in message.strip():
            causes.append(errors.cause(f"{where}.message", f"Invalid value: {json.dumps(message)}: message must "
                                       "not contain line breaks"))
        reason = validation.get("reason")
        if reason is not None and reason not in _REASON_CODES:
            causes.append(errors.cause(f"{where}.reason", f"Unsupported value: {json.dumps(reason)}: supported "
                                       'values: "Forbidden", "Invalid", "RequestEntityTooLarge", "Unauthorized"',
                                       "FieldValueNotSupported"))
    for index, annotation in enumerate(spec.get("auditAnnotations") or []):
        source = annotation.get("valueExpression") if isinstance(annotation, dict) else None
        problem = _compile_cause(f"spec.auditAnnotations[{index}].valueExpression", source, _POLICY_ENVIRONMENT,
                                 variable_names, must_be="string")
        if problem is not None:
            causes.append(problem)
    return causes


def validate_binding(obj: dict[str, Any]) -> list[Cause]:
    """Why the server would refuse to store this ValidatingAdmissionPolicyBinding."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [errors.cause("spec", "Required value", "FieldValueRequired")]
    causes: list[Cause] = []
    if not spec.get("policyName"):
        causes.append(errors.cause("spec.policyName", "Required value", "FieldValueRequired"))
    if spec.get("paramRef") is not None:
        causes.append(errors.cause("spec.paramRef", "Forbidden: parameter resources are not supported by the "
                                   "local cluster", "FieldValueForbidden"))
    actions = spec.get("validationActions") or []
    if not actions:
        causes.append(errors.cause("spec.validationActions", "Required value: at least one validation action is "
                                   "required", "FieldValueRequired"))
    for index, action in enumerate(actions):
        if action not in _ACTIONS:
            causes.append(errors.cause(f"spec.validationActions[{index}]", f"Unsupported value: {json.dumps(action)}"
                                       ': supported values: "Audit", "Deny", "Warn"', "FieldValueNotSupported"))
    if "Deny" in actions and "Warn" in actions:
        causes.append(errors.cause("spec.validationActions", f"Invalid value: {json.dumps(actions)}: must not "
                                   "contain both Deny and Warn (repeating the same validation failure information "
                                   "in the API response and headers serves no purpose)"))
    causes.extend(_match_causes(spec.get("matchResources"), "spec.matchResources", rules_required=False))
    return causes


# -- matching ---------------------------------------------------------------------------------------------


def _rule_matches(rule: Mapping[str, Any], request: AdmissionRequest) -> bool:
    rt = request.resource
    operations = rule.get("operations") or []
    if "*" not in operations and request.operation not in operations:
        return False
    if not _listed(rule.get("apiGroups"), rt.group) or not _listed(rule.get("apiVersions"), rt.version):
        return False
    scope = rule.get("scope") or "*"
    if (scope == "Cluster" and rt.namespaced) or (scope == "Namespaced" and not rt.namespaced):
        return False
    names = rule.get("resourceNames") or []
    if names and request.name not in names:
        return False
    for entry in rule.get("resources") or []:
        resource, _, subresource = str(entry).partition("/")
        if resource in ("*", rt.plural) and subresource in ("*", request.subresource):
            return True
    return False


def _listed(values: Iterable[str] | None, value: str) -> bool:
    values = list(values or [])
    return "*" in values or value in values


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str] | None:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


@dataclass
class _Decision:
    message: str
    reason: str
    denied_by_error: bool = False


class PolicyAdmission:
    """The admission hook of ``ClusterAPI`` that runs every stored policy binding. See the module docstring."""

    def __init__(self, api: ClusterAPI) -> None:
        self.api = api

    def __call__(self, request: AdmissionRequest) -> None:
        if request.resource.group_resource in _EXEMPT:
            return
        bindings = sorted(self.api.store.iter(BINDINGS, None), key=lambda b: str(b["metadata"].get("name")))
        if not bindings:
            return
        namespace_object = None
        if request.resource.namespaced and request.namespace:
            namespace_object = self.api.store.get(("", "namespaces"), "", request.namespace)
        denial: StatusError | None = None
        for binding in bindings:
            spec = binding.get("spec") or {}
            policy = self.api.store.get(POLICIES, "", str(spec.get("policyName")))
            if policy is None or not self._matches(policy, binding, request, namespace_object):
                continue
            actions = spec.get("validationActions") or []
            for decision in self._evaluate(policy, request, namespace_object):
                policy_name, binding_name = policy["metadata"]["name"], binding["metadata"]["name"]
                if "Warn" in actions and request.warnings is not None:
                    request.warnings.append(f"Validation failed for ValidatingAdmissionPolicy '{policy_name}' "
                                            f"with binding '{binding_name}': {decision.message}")
                if "Deny" in actions and denial is None:
                    denial = _denial(request, policy_name, binding_name, decision)
        if denial is not None:
            raise denial

    # matching

    def _matches(self, policy: Mapping[str, Any], binding: Mapping[str, Any], request: AdmissionRequest,
                 namespace_object: Mapping[str, Any] | None) -> bool:
        constraints = (policy.get("spec") or {}).get("matchConstraints") or {}
        if not self._match_resources(constraints, request, namespace_object, rules_required=True):
            return False
        resources = (binding.get("spec") or {}).get("matchResources")
        return resources is None or self._match_resources(resources, request, namespace_object, rules_required=False)

    @staticmethod
    def _match_resources(match: Mapping[str, Any], request: AdmissionRequest,
                         namespace_object: Mapping[str, Any] | None, *, rules_required: bool) -> bool:
        rules = match.get("resourceRules")
        if (rules or rules_required) and not any(_rule_matches(rule, request) for rule in rules or []):
            return False
        if any(_rule_matches(rule, request) for rule in match.get("excludeResourceRules") or []):
            return False
        namespaces = label_selector_from_dict(match.get("namespaceSelector") or {})
        if request.resource.group_resource == ("", "namespaces"):
            candidate = request.object or request.old_object
            if not namespaces.matches(_labels(candidate)):
                return False
        elif request.resource.namespaced and not namespaces.matches(_labels(namespace_object)):
            return False
        objects = label_selector_from_dict(match.get("objectSelector") or {})
        return objects.matches(_labels(request.object)) or objects.matches(_labels(request.old_object))

    # evaluating

    def _evaluate(self, policy: Mapping[str, Any], request: AdmissionRequest,
                  namespace_object: Mapping[str, Any] | None) -> list[_Decision]:
        spec = policy.get("spec") or {}
        fail_closed = spec.get("failurePolicy", "Fail") == "Fail"
        activation: dict[str, Any] = {
            "object": request.object,
            "oldObject": request.old_object,
            "request": _request_variable(request),
            "params": None,
            "namespaceObject": namespace_object,
        }
        for condition in spec.get("matchConditions") or []:
            try:
                outcome = _program(condition["expression"], _MATCH_CONDITION_ENVIRONMENT, None).evaluate(activation)
                if not isinstance(outcome, bool):
                    raise CelEvalError(f"matchCondition must evaluate to bool, got {outcome!r}")
            except CelError as exc:
                if fail_closed:
                    return [_Decision(f"failed to evaluate matchCondition {condition.get('name')}: {exc}",
                                      "Invalid", denied_by_error=True)]
                return []
            if not outcome:
                return []
        names: list[str] = []
        programs: dict[str, Program] = {}
        for variable in spec.get("variables") or []:
            programs[variable["name"]] = _program(variable["expression"], _POLICY_ENVIRONMENT, tuple(names))
            names.append(variable["name"])
        activation["variables"] = LazyVariables(programs, activation)
        decisions: list[_Decision] = []
        for validation in spec.get("validations") or []:
            source = validation["expression"]
            try:
                outcome = _program(source, _POLICY_ENVIRONMENT, tuple(names)).evaluate(activation)
                if not isinstance(outcome, bool):
                    raise CelEvalError(f"expression '{source}' must evaluate to bool")
            except CelError as exc:
                if fail_closed:
                    decisions.append(_Decision(f"expression '{source}' resulted in error: {exc}", "Invalid",
                                               denied_by_error=True))
                continue
            if not outcome:
                decisions.append(_Decision(self._message(validation, activation, names),
                                           validation.get("reason") or "Invalid"))
        return decisions

    @staticmethod
    def _message(validation: Mapping[str, Any], activation: Mapping[str, Any], names: list[str]) -> str:
        message = (validation.get("message") or "").strip() or \
            f"failed expression: {str(validation['expression']).strip()}"
        source = validation.get("messageExpression")
        if source:
            try:
                value = _program(source, _POLICY_ENVIRONMENT, tuple(names)).evaluate(activation)
            except CelError:
                return message  # the real server logs the error and falls back to message
            if isinstance(value, str) and value.strip() and "\n" not in value.strip():
                return value.strip()
        return message


def _request_variable(request: AdmissionRequest) -> dict[str, Any]:
    rt = request.resource
    kind = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    resource = {"group": rt.group, "version": rt.version, "resource": rt.plural}
    user = request.user
    return {
        "kind": kind, "resource": resource, "subResource": request.subresource,
        "requestKind": kind, "requestResource": resource, "requestSubResource": request.subresource,
        "name": request.name, "namespace": request.namespace, "operation": request.operation,
        "userInfo": {"username": str(user.get("username", "")), "uid": str(user.get("uid", "")),
                     "groups": list(user.get("groups") or []), "extra": dict(user.get("extra") or {})},
        "dryRun": request.dry_run,
    }


def _denial(request: AdmissionRequest, policy: str, binding: str, decision: _Decision) -> StatusError:
    rt = request.resource
    text = f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {decision.message}"
    qualified = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
    message = f'{qualified} "{request.name}" is forbidden: {text}' if request.name else \
        f"{qualified} is forbidden: {text}"
    details: dict[str, Any] = {"kind": rt.plural, "causes": [{"message": text}]}
    if request.name:
        details["name"] = request.name
    if rt.group:
        details["group"] = rt.group
    return StatusError(_REASON_CODES.get(decision.reason, 422), decision.reason, message, details=details)

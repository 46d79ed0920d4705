"""The three PATCH dialects of the Kubernetes API server, applied to plain JSON-like objects.

Every client this emulator serves patches objects, and each picks a different dialect: kopf sends JSON
merge patches (RFC 7386), ``kubectl patch --type=json`` and operators send JSON patches (RFC 6902), and
``kubectl apply``/``edit``/``patch`` (default) plus the official ``kubernetes`` client send *strategic*
merge patches. The server has to apply them exactly the way kube-apiserver does, or a client that works
here would misbehave against a real cluster (a sidecar silently replacing the main container, an env var
dropped, a finalizer lost). This module mirrors:

* ``k8s.io/apimachinery/pkg/util/strategicpatch`` (the apply half, with the same ``MergeOptions`` the
  apiserver uses: parallel deletion lists are honoured and unmatched nulls are dropped), including its
  best-effort list ordering, and the patch-strategy tags of the ``k8s.io/api`` Go types;
* ``github.com/evanphx/json-patch`` as used by the apiserver for RFC 6902 and RFC 7386, with its error
  wording where it is clear.

The functions are pure: they never mutate their arguments and never share structure with them, so the
caller can store the result as a new object revision.

Errors split the way the apiserver answers them: :class:`MalformedPatch` is a broken patch document
(400 BadRequest), :class:`PatchFailed` is a well-formed patch that cannot apply to this object
(422 Invalid / UnprocessableEntity).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .store import copy_document

__all__ = [
    "MalformedPatch",
    "PatchError",
    "PatchFailed",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "strategic_merge_supported",
]


class PatchError(Exception):
    """A patch could not be applied; ``message`` is meant for the ``metav1.Status`` sent back."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedPatch(PatchError):
    """The patch document itself is invalid; the server answers 400 BadRequest."""


class PatchFailed(PatchError):
    """The patch is well formed but cannot be applied to this object; the server answers 422."""


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _json_equal(a: Any, b: Any) -> bool:
    """Structural JSON equality.

    Python's ``==`` says ``True == 1`` and ``{"a": 1} == {"a": True}``; JSON (and Go) do not.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _compact(value: Any) -> str:
    # Go's json.Marshal of a map sorts keys; messages quoting the patch read the same way.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else type(value).__name__


# --------------------------------------------------------------------------------------------------
# RFC 7386 JSON merge patch
# --------------------------------------------------------------------------------------------------


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch and return the new document.

    Objects merge recursively, ``null`` deletes a member, anything else (including arrays) replaces the
    target value. A non-object patch replaces the whole document, so the result is only guaranteed to be
    a dict when ``patch`` is one; the caller validates the resulting object.
    """
    if not isinstance(patch, dict):
        return copy_document(patch)
    result = copy_document(target) if isinstance(target, dict) else {}
    _merge_patch_into(result, patch)
    return result


def _merge_patch_into(result: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            if not isinstance(current, dict):
                current = {}
            _merge_patch_into(current, value)
            result[key] = current
        else:
            result[key] = copy_document(value)


# --------------------------------------------------------------------------------------------------
# RFC 6902 JSON patch
# --------------------------------------------------------------------------------------------------

_OPERATION_FIELDS: dict[str, tuple[str, ...]] = {
    "add": ("path", "value"),
    "remove": ("path",),
    "replace": ("path", "value"),
    "move": ("from", "path"),
    "copy": ("from", "path"),
    "test": ("path", "value"),
}
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"~(?![01])")


@dataclass(frozen=True)
class _Operation:
    op: str
    path: str
    tokens: tuple[str, ...]
    from_path: str = ""
    from_tokens: tuple[str, ...] = ()
    value: Any = None


def apply_json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch (a list of operations) and return the new document.

    The whole patch is validated before anything is applied (as the apiserver decodes it first), and
    operations apply atomically: on any failure the target is untouched and an error is raised.
    Array indices follow RFC 6902 strictly (no negative indices); ``-`` appends for ``add``.
    """
    decoded = _decode_operations(operations)
    document = copy_document(target)
    for operation in decoded:
        document = _apply_operation(document, operation)
    return document


def _decode_operations(operations: Any) -> list[_Operation]:
    if not isinstance(operations, list):
        raise MalformedPatch(
            f"json: cannot unmarshal {_json_kind(operations)} into Go value of type jsonpatch.Patch"
        )
    decoded = []
    for raw in operations:
        if not isinstance(raw, dict):
            raise MalformedPatch(
                f"json: cannot unmarshal {_json_kind(raw)} into Go value of type jsonpatch.Operation"
            )
        # The apiserver decodes any list of objects as a patch and fails bad operations while applying
        # them, so an unknown op or a missing field is a 422 (PatchFailed), not a 400.
        op = raw.get("op")
        if not isinstance(op, str) or op not in _OPERATION_FIELDS:
            raise PatchFailed(f"invalid operation {_compact(raw)}: unsupported operation")
        for name in _OPERATION_FIELDS[op]:
            if name not in raw:
                raise PatchFailed(
                    f"invalid operation {_compact(raw)}: failed to decode '{name}': "
                    f"operation missing {name} field: missing value"
                )
        path = raw["path"]
        from_path = raw.get("from", "")
        decoded.append(
            _Operation(
                op=op,
                path=path,
                tokens=_parse_pointer(path, "path", raw),
                from_path=from_path,
                from_tokens=_parse_pointer(from_path, "from", raw) if "from" in raw else (),
                value=raw.get("value"),
            )
        )
    return decoded


def _parse_pointer(pointer: Any, name: str, raw: dict[str, Any]) -> tuple[str, ...]:
    """Split an RFC 6901 JSON pointer into unescaped reference tokens."""
    if not isinstance(pointer, str):
        raise PatchFailed(
            f"invalid operation {_compact(raw)}: failed to decode '{name}': JSON pointer must be a string"
        )
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise PatchFailed(
            f"invalid operation {_compact(raw)}: failed to decode '{name}': "
            f"JSON pointer {pointer!r} must be empty or start with '/'"
        )
    tokens = []
    for token in pointer[1:].split("/"):
        if _BAD_ESCAPE.search(token):
            raise PatchFailed(
                f"invalid operation {_compact(raw)}: failed to decode '{name}': "
                f"JSON pointer {pointer!r} has a '~' not followed by '0' or '1'"
            )
        # RFC 6901 section 4: '~1' first, then '~0', so that '~01' decodes to '~1' and not '/'.
        tokens.append(token.replace("~1", "/").replace("~0", "~"))
    return tuple(tokens)


_MISSING: Any = object()


def _lookup(document: Any, tokens: tuple[str, ...]) -> Any:
    """The value at ``tokens``, or ``_MISSING``."""
    node = document
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                return _MISSING
            node = node[token]
        elif isinstance(node, list):
            if not _ARRAY_INDEX.fullmatch(token) or int(token) >= len(node):
                return _MISSING
            node = node[int(token)]
        else:
            return _MISSING
    return node


def _array_index(token: str, length: int, *, appending: bool, context: str) -> int:
    if token == "-" and appending:
        return length
    if not _ARRAY_INDEX.fullmatch(token):
        raise PatchFailed(f"{context}: value was not a proper array index: '{token}'")
    index = int(token)
    if index > length or (index == length and not appending):
        raise PatchFailed(f"{context}: Unable to access invalid index: {index}: invalid index referenced")
    return index


def _add(document: Any, tokens: tuple[str, ...], path: str, value: Any, verb: str = "add") -> Any:
    if not tokens:
        return value
    parent = _lookup(document, tokens[:-1])
    if not isinstance(parent, (dict, list)):
        raise PatchFailed(f'{verb} operation does not apply: doc is missing path: "{path}": missing value')
    key = tokens[-1]
    if isinstance(parent, dict):
        parent[key] = value
    else:
        index = _array_index(key, len(parent), appending=True, context=f"error in {verb} for path: '{path}'")
        parent.insert(index, value)
    return document


def _remove(document: Any, tokens: tuple[str, ...], path: str, verb: str = "remove") -> Any:
    """Remove the value at ``tokens`` in place and return it."""
    if not tokens:
        raise PatchFailed(f"{verb} operation does not apply: cannot remove the whole document")
    parent = _lookup(document, tokens[:-1])
    if not isinstance(parent, (dict, list)):
        raise PatchFailed(f'{verb} operation does not apply: doc is missing path: "{path}": missing value')
    key = tokens[-1]
    if isinstance(parent, dict):
        if key not in parent:
            raise PatchFailed(
                f"error in {verb} for path: '{path}': unable to remove nonexistent key: {key}: missing value"
            )
        return parent.pop(key)
    index = _array_index(key, len(parent), appending=False, context=f"error in {verb} for path: '{path}'")
    return parent.pop(index)


def _apply_operation(document: Any, operation: _Operation) -> Any:
    op, tokens, path = operation.op, operation.tokens, operation.path
    if op == "add":
        return _add(document, tokens, path, copy_document(operation.value))
    if op == "remove":
        _remove(document, tokens, path)
        return document
    if op == "replace":
        if not tokens:
            return copy_document(operation.value)
        parent = _lookup(document, tokens[:-1])
        if not isinstance(parent, (dict, list)):
            raise PatchFailed(f"replace operation does not apply: doc is missing path: {path}: missing value")
        if _lookup(parent, tokens[-1:]) is _MISSING:
            raise PatchFailed(f"replace operation does not apply: doc is missing key: {path}: missing value")
        if isinstance(parent, dict):
            parent[tokens[-1]] = copy_document(operation.value)
        else:
            parent[int(tokens[-1])] = copy_document(operation.value)
        return document
    if op == "test":
        actual = _lookup(document, tokens)
        if actual is _MISSING or not _json_equal(actual, operation.value):
            raise PatchFailed(f"testing value {path} failed: test failed")
        return document
    source, source_tokens = operation.from_path, operation.from_tokens
    if _lookup(document, source_tokens) is _MISSING:
        raise PatchFailed(f"{op} operation does not apply: doc is missing from path: {source}: missing value")
    if op == "copy":
        value = copy_document(_lookup(document, source_tokens))
        return _add(document, tokens, path, value, verb="copy")
    # move
    if source_tokens == tokens:
        return document
    if not source_tokens:
        raise PatchFailed("move operation does not apply: unable to move entire document to another path")
    if tokens[: len(source_tokens)] == source_tokens:
        raise PatchFailed(f"move operation does not apply: cannot move {source} into its own child {path}")
    value = _remove(document, source_tokens, source, verb="move")
    return _add(document, tokens, path, value, verb="move")


# --------------------------------------------------------------------------------------------------
# Strategic merge patch
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """Patch metadata of one field, i.e. its ``patchStrategy``/``patchMergeKey`` Go struct tags.

    ``merge`` is ``patchStrategy:"merge"`` on a list: elements merge by ``key`` (a list of objects), or
    form an ordered set (a list of primitives, ``key`` is None). Lists without it are replaced wholesale;
    objects always merge recursively. ``schema`` names the struct type of the value (or of the list
    elements) in ``_SCHEMAS``, so nested fields get their own metadata.
    """

    merge: bool = False
    key: str | None = None
    schema: str | None = None


_PLAIN = _Field()
_SET = _Field(merge=True)


def _by(key: str, schema: str | None = None) -> _Field:
    return _Field(merge=True, key=key, schema=schema)


def _of(schema: str) -> _Field:
    return _Field(schema=schema)


# Keyed by the Go struct each field lives in (the context), transcribed from the `patchStrategy` and
# `patchMergeKey` tags of k8s.io/api (x-kubernetes-patch-strategy / -merge-key in the OpenAPI).
# Only fields that merge, or lead to fields that merge, are listed: everything else is a plain field
# (objects merge, lists such as tolerations, args, command, volumeClaimTemplates, rbac rules and
# CRD conditions are replaced).
_SCHEMAS: dict[str, dict[str, _Field]] = {
    "ObjectMeta": {
        "ownerReferences": _by("uid"),
        "finalizers": _SET,
    },
    "Container": {
        "ports": _by("containerPort"),
        "env": _by("name"),
        "volumeMounts": _by("mountPath"),
        "volumeDevices": _by("devicePath"),
    },
    "PodSpec": {
        "volumes": _by("name"),
        "initContainers": _by("name", "Container"),
        "containers": _by("name", "Container"),
        "ephemeralContainers": _by("name", "Container"),
        "imagePullSecrets": _by("name"),
        "hostAliases": _by("ip"),
        "topologySpreadConstraints": _by("topologyKey"),
        "schedulingGates": _by("name"),
        "resourceClaims": _by("name"),
    },
    "PodStatus": {
        "conditions": _by("type"),
        "podIPs": _by("ip"),
        "hostIPs": _by("ip"),
        "resourceClaimStatuses": _by("name"),
    },
    "PodTemplateSpec": {"metadata": _of("ObjectMeta"), "spec": _of("PodSpec")},
    # Any spec whose pod template is `spec.template`: StatefulSet, Deployment, ReplicaSet, DaemonSet,
    # ReplicationController and Job.
    "TemplatedSpec": {"template": _of("PodTemplateSpec")},
    "JobTemplateSpec": {"metadata": _of("ObjectMeta"), "spec": _of("TemplatedSpec")},
    "CronJobSpec": {"jobTemplate": _of("JobTemplateSpec")},
    # Status of every built-in kind whose conditions merge by type.
    "ConditionsStatus": {"conditions": _by("type")},
    "ServiceSpec": {"ports": _by("port")},
    "NodeSpec": {"podCIDRs": _SET},
    "NodeStatus": {"conditions": _by("type"), "addresses": _by("type")},
    # Top-level kinds.
    "Object": {"metadata": _of("ObjectMeta")},
    "Pod": {"metadata": _of("ObjectMeta"), "spec": _of("PodSpec"), "status": _of("PodStatus")},
    "PodTemplate": {"metadata": _of("ObjectMeta"), "template": _of("PodTemplateSpec")},
    "Workload": {
        "metadata": _of("ObjectMeta"),
        "spec": _of("TemplatedSpec"),
        "status": _of("ConditionsStatus"),
    },
    "CronJob": {"metadata": _of("ObjectMeta"), "spec": _of("CronJobSpec")},
    "Service": {
        "metadata": _of("ObjectMeta"),
        "spec": _of("ServiceSpec"),
        "status": _of("ConditionsStatus"),
    },
    "Node": {"metadata": _of("ObjectMeta"), "spec": _of("NodeSpec"), "status": _of("NodeStatus")},
    "ObjectWithConditions": {"metadata": _of("ObjectMeta"), "status": _of("ConditionsStatus")},
    "ServiceAccount": {"metadata": _of("ObjectMeta"), "secrets": _by("name")},
}

# Built-in kinds: kube-apiserver accepts strategic merge patches for them because it has their Go types.
_KIND_SCHEMAS: dict[str, str] = {
    "Pod": "Pod",
    "PodTemplate": "PodTemplate",
    "Service": "Service",
    "StatefulSet": "Workload",
    "Deployment": "Workload",
    "ReplicaSet": "Workload",
    "DaemonSet": "Workload",
    "ReplicationController": "Workload",
    "Job": "Workload",
    "CronJob": "CronJob",
    "ConfigMap": "Object",
    "Secret": "Object",
    "Namespace": "ObjectWithConditions",
    "Node": "Node",
    "PersistentVolumeClaim": "ObjectWithConditions",
    "ServiceAccount": "ServiceAccount",
    "Event": "Object",
    "Lease": "Object",
    "Role": "Object",
    "ClusterRole": "Object",
    "RoleBinding": "Object",
    "ClusterRoleBinding": "Object",
    "CustomResourceDefinition": "Object",
    "ValidatingAdmissionPolicy": "Object",  # every list of admissionregistration/v1 is atomic
    "ValidatingAdmissionPolicyBinding": "Object",
    "Scale": "Object",
}

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"
_SET_ELEMENT_ORDER = "$setElementOrder/"
_DELETED: Any = object()


def strategic_merge_supported(kind: str) -> bool:
    """Whether the apiserver accepts ``application/strategic-merge-patch+json`` for this kind.

    Custom resources have no Go types to carry patch strategies, so the real server answers 415
    UnsupportedMediaType for them; the emulator does the same when this returns False.
    """
    return kind in _KIND_SCHEMAS


def apply_strategic_merge_patch(target: dict[str, Any], patch: Any, *, kind: str) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to an object of a built-in ``kind``.

    Objects merge recursively and ``null`` deletes a key. Lists tagged ``patchStrategy: merge`` merge
    element-wise by their merge key, or as an ordered set for primitives (``metadata.finalizers``);
    every other list is replaced. Directives: ``$patch: replace|delete|merge`` on objects and list
    elements, ``$deleteFromPrimitiveList/<field>``, ``$setElementOrder/<field>`` and ``$retainKeys``.

    Merged lists are ordered like the apiserver does it: ``$setElementOrder`` wins, then the order of
    the patch list, then the order of the live list; items only on the server keep their place relative
    to the live list, so an item that is new (absent from the live list) lands *before* the live items
    unless ``$setElementOrder`` says otherwise. A kind without merge metadata (see
    :func:`strategic_merge_supported`) is patched with the ObjectMeta rules only.
    """
    if not isinstance(patch, dict):
        raise MalformedPatch(
            f"json: cannot unmarshal {_json_kind(patch)} into Go value of type map[string]interface {{}}"
        )
    merged = _merge_map(copy_document(target), copy_document(patch), _KIND_SCHEMAS.get(kind, "Object"), "")
    return {} if merged is _DELETED else merged


# The merge functions below work on private deep copies, so they mutate `original` and `patch` freely,
# the way the Go implementation does.


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: str | None, path: str) -> Any:
    """Merge ``patch`` into ``original``; returns the merged dict or ``_DELETED``."""
    if _DIRECTIVE in patch:
        directive = patch.pop(_DIRECTIVE)
        if directive == "replace":
            # The patch becomes the value; merging it into nothing strips nested directives.
            return _merge_map({}, patch, schema, path)
        if directive == "delete":
            return _DELETED
        if directive != "merge":
            raise MalformedPatch(f"unknown patch type: {directive} in map: {_compact(patch)}")
    fields = _SCHEMAS.get(schema, {}) if schema else {}
    _apply_retain_keys(original, patch, path)
    _apply_element_orders(original, patch, fields, path)
    deletions = {
        key[len(_DELETE_FROM_PRIMITIVE_LIST) :]: patch.pop(key)
        for key in list(patch)
        if key.startswith(_DELETE_FROM_PRIMITIVE_LIST)
    }
    for key, value in patch.items():
        if key.startswith("$"):
            raise MalformedPatch(
                f"unknown strategic merge patch directive {key!r} at {path or 'the top level'}"
            )
        if value is None:
            original.pop(key, None)
            continue
        merged = _merge_value(original.get(key, _MISSING), value, fields.get(key, _PLAIN), _child(path, key))
        if merged is _DELETED:
            original.pop(key, None)
        else:
            original[key] = merged
    for name, values in deletions.items():
        if not name or not isinstance(values, list):
            raise MalformedPatch("invalid patch format of primitive list")
        current = original.get(name)
        if isinstance(current, list):
            original[name] = [item for item in current if not any(_json_equal(item, v) for v in values)]
    return original


def _merge_value(current: Any, value: Any, field: _Field, path: str) -> Any:
    if isinstance(value, dict):
        return _merge_map(current if isinstance(current, dict) else {}, value, field.schema, path)
    if isinstance(value, list):
        if field.merge:
            return _merge_list(current if isinstance(current, list) else [], value, field, path)
        return _replacement_list(value, field, path)
    return value


def _replacement_list(items: list[Any], field: _Field, path: str) -> list[Any]:
    """A list that replaces the live one, cleaned of directives as the apiserver's decoding would."""
    result = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            item = _merge_map({}, item, field.schema, f"{path}[{index}]")
            if item is _DELETED:
                continue
        elif isinstance(item, list):
            item = _replacement_list(item, _PLAIN, f"{path}[{index}]")
        result.append(item)
    return result


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any], path: str) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retained = patch.pop(_RETAIN_KEYS)
    if not isinstance(retained, list):
        raise MalformedPatch("invalid patch format of retainKeys")
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if key not in retained:
            raise MalformedPatch(
                f"invalid patch format of retainKeys: {key!r} at {path or 'the top level'} "
                "is not in the $retainKeys list"
            )
    for key in [key for key in original if key not in retained]:
        del original[key]


def _identity(item: Any, key: str | None) -> Any:
    """What identifies a list element: its merge key value, or the value itself for primitives."""
    if key is None:
        return item
    return item.get(key, _MISSING) if isinstance(item, dict) else _MISSING


def _index(items: list[Any], item: Any, key: str | None) -> int:
    wanted = _identity(item, key)
    if wanted is _MISSING:
        return -1
    for position, candidate in enumerate(items):
        found = _identity(candidate, key)
        if found is not _MISSING and _json_equal(found, wanted):
            return position
    return -1


def _element_kind(item: Any) -> str:
    if isinstance(item, dict):
        return "map"
    return "list" if isinstance(item, list) else "scalar"


def _merge_list(original: list[Any], patch: list[Any], field: _Field, path: str) -> list[Any]:
    if not original and not patch:
        return original
    kinds = {_element_kind(item) for item in original + patch}
    if "list" in kinds:
        raise PatchFailed(f"lists of lists are not supported (at {path})")
    if len(kinds) > 1:
        raise PatchFailed(f"list element types are not identical (at {path})")
    if kinds == {"scalar"}:
        merged: list[Any] = []
        for item in original + patch:
            if not any(_json_equal(item, seen) for seen in merged):
                merged.append(item)
        return _ordered(merged, patch, original, None)
    key = field.key
    if key is None:
        raise PatchFailed(f"cannot merge lists of objects without a merge key (at {path})")
    original, patch = _apply_list_directives(original, patch, field, path)
    server_order = list(original)
    merged = list(original)
    for element in patch:
        if key not in element:
            raise MalformedPatch(f"map: {_compact(element)} does not contain declared merge key: {key}")
        position = _index(merged, element, key)
        element_path = f"{path}[{key}={element[key]}]"
        if position >= 0:
            result = _merge_map(merged[position], element, field.schema, element_path)
            if result is _DELETED:
                del merged[position]
            else:
                merged[position] = result
        else:
            result = _merge_map({}, element, field.schema, element_path)
            if result is not _DELETED:
                merged.append(result)
    return _ordered(merged, patch, server_order, key)


def _apply_list_directives(
    original: list[Any], patch: list[Any], field: _Field, path: str
) -> tuple[list[Any], list[Any]]:
    """Handle list elements carrying ``$patch``; returns the live list and the plain patch elements."""
    key = field.key
    plain = []
    replace = False
    for element in patch:
        if _DIRECTIVE not in element:
            plain.append(element)
            continue
        directive = element[_DIRECTIVE]
        if directive == "delete":
            if key not in element:
                raise MalformedPatch(f"map: {_compact(element)} does not contain declared merge key: {key}")
            original = [item for item in original if _index([element], item, key) < 0]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            # kube-apiserver refuses this ("merging lists cannot yet be specified in the patch"); merging
            # is what the element asks for anyway, so treat it as a plain element.
            plain.append({k: v for k, v in element.items() if k != _DIRECTIVE})
        else:
            raise MalformedPatch(f"unknown patch type: {directive} in map: {_compact(element)}")
    if replace:
        return _replacement_list(plain, field, path), []
    return original, plain


def _ordered(
    merged: list[Any], patch_order: list[Any], server_order: list[Any], key: str | None
) -> list[Any]:
    """Order a merged list the way strategicpatch's normalizeElementOrder does.

    Items named by ``patch_order`` follow its order; the other (server-only) items keep their live
    order and are interleaved by their position in ``server_order``.
    """
    in_patch = [item for item in merged if _index(patch_order, item, key) >= 0]
    server_only = [item for item in merged if _index(patch_order, item, key) < 0]
    in_patch = _sorted_by(in_patch, patch_order, key)
    server_only = _sorted_by(server_only, server_order, key)

    result: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(in_patch):
        if i >= len(server_only):
            result.append(in_patch[j])
            j += 1
        elif j >= len(in_patch):
            result.append(server_only[i])
            i += 1
        else:
            left = _index(server_order, server_only[i], key)
            right = _index(server_order, in_patch[j], key)
            # A patch item absent from the live list wins the comparison, which is why new items
            # land ahead of the server-only ones.
            if left >= 0 and right >= 0 and left < right:
                result.append(server_only[i])
                i += 1
            else:
                result.append(in_patch[j])
                j += 1
    return result


def _sorted_by(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def position(item: Any) -> int:
        found = _index(order, item, key)
        return found if found >= 0 else len(order)

    return sorted(items, key=position)


def _apply_element_orders(
    original: dict[str, Any], patch: dict[str, Any], fields: dict[str, _Field], path: str
) -> None:
    """Process ``$setElementOrder/<field>`` together with the patch list of that field."""
    for directive in [key for key in patch if key.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(directive)
        name = directive[len(_SET_ELEMENT_ORDER) :]
        if not name or not isinstance(order, list):
            raise MalformedPatch("invalid patch format of setElementOrder list")
        field = fields.get(name, _PLAIN)
        current = original.get(name, _MISSING)
        incoming = patch.get(name, _MISSING)
        if not field.merge or incoming is None:
            # A replaced list takes the order of the patch; a deleted one has none to set.
            continue
        if (current is not _MISSING and not isinstance(current, list)) or (
            incoming is not _MISSING and not isinstance(incoming, list)
        ):
            continue
        key = field.key
        if key is not None and not all(isinstance(item, dict) and key in item for item in order):
            raise MalformedPatch(f"invalid patch format of setElementOrder list: every item needs {key!r}")
        if incoming is not _MISSING:
            _check_order(incoming, order, key)
        if current is _MISSING and incoming is _MISSING:
            continue
        live = [] if current is _MISSING else current
        merged = live if incoming is _MISSING else _merge_list(live, incoming, field, _child(path, name))
        original[name] = _ordered(merged, order, live, key)
        patch.pop(name, None)


def _check_order(patch_list: list[Any], order: list[Any], key: str | None) -> None:
    """Reject a patch list whose relative order contradicts its ``$setElementOrder`` list."""
    items = [item for item in patch_list if not (isinstance(item, dict) and _DIRECTIVE in item)]
    if not items or not order:
        return
    i = j = 0
    while i < len(items) and j < len(order):
        if _index([order[j]], items[i], key) == 0:
            i += 1
        j += 1
    if i < len(items):
        raise MalformedPatch(
            f"the order in patch list:\n{_compact(patch_list)}\n doesn't match "
            f"{_SET_ELEMENT_ORDER.rstrip('/')} list:\n{_compact(order)}"
        )

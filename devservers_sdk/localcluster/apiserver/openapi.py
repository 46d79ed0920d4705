"""The OpenAPI documents the emulator publishes, and strict field validation against the same schemas.

What kubectl 1.37.1 does with them (observed with ``-v=8`` against these documents):

* ``kubectl apply``/``create``/``replace`` validate with ``--validate=strict`` by default. Before sending,
  kubectl asks whether the server validates fields itself: it GETs ``/openapi/v3`` (the index below),
  then the group-version document it names (``/openapi/v3/api/v1?hash=...``, ``Accept:
  application/json``), and looks through every path's PATCH operation for one whose
  ``x-kubernetes-group-version-kind`` (a single object on the operation) is the kind being applied and
  whose *operation-level* ``parameters`` include one named ``fieldValidation`` (cli-runtime
  ``queryParamVerifierV3``; inline parameters only, a ``$ref`` has no name). Finding it, kubectl sends
  ``?fieldValidation=Strict`` on POST, PUT, PATCH and server-side apply alike and lets the server reject
  unknown fields with ``strict decoding error: unknown field "spec.containers[0].imagee"`` (BadRequest),
  which ``unknown_fields`` and ``strict_decoding_error`` provide. Check the object as it will be stored
  (a create/update body, or the result of applying a patch): a strategic merge patch body carries
  directives such as ``$setElementOrder/containers`` that are not fields.
* CRD kinds go through the same check against their own group-version document, which we always
  publish. ``--dry-run=server`` needs nothing from the documents (no verifier request is made).
* ``kind: List`` manifests (what ``kubectl get -o yaml`` writes) are never checked against v3: kubectl
  validates their items client-side against ``/openapi/v2``, which client-go requests only as protobuf
  (``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``) and parses with ``proto.Unmarshal``.
  A 404 there fails the whole apply ("error validating data: the server could not find the requested
  resource"), so the server answers with ``openapi_v2_protobuf()``, a valid document that defines no
  kinds: kubectl skips client-side validation of kinds it has no schema for and sends each item with
  ``fieldValidation=Strict``. A JSON request for v2 may keep getting 404.
* Client-side ``kubectl apply`` picks the patch type from the same documents: if the kind's PATCH
  operation accepts ``application/strategic-merge-patch+json`` it builds the strategic merge patch from
  the components' ``x-kubernetes-patch-merge-key``/``-strategy``; otherwise it asks v2 (which names no
  kinds), then falls back to its compiled-in Go types for built-in kinds (a strategic merge patch with
  ``$setElementOrder`` lists, exactly as against a real cluster) or to a JSON merge patch for other kinds.
  We deliberately leave strategic merge patch out of the advertised PATCH bodies: kubectl's compiled-in
  struct tags are complete, while ``builtin_schemas.json`` restates only the common merge keys. The server
  still accepts strategic merge patches; CRD kinds never advertise them, like the real server.
* ``kubectl explain`` reads the same v3 documents (it finds a kind by the components'
  ``x-kubernetes-group-version-kind`` lists) and works for built-in and CRD kinds.
* The ``?hash=`` in each ``serverRelativeURL`` lets client-go cache a document until it changes; the hash
  changes whenever a CRD's schema (and so its document) changes. The real server answers a request with
  a matching hash with ``Cache-Control: public, immutable`` and a stale hash with a redirect to the
  current URL; serving the current document either way is also accepted.

Built-in kinds' schemas come from ``builtin_schemas.json``, generated from the official Python client's
models by ``tools/generate_builtin_schemas.py`` (the emulator itself never imports ``kubernetes``).
CRD kinds use their ``openAPIV3Schema`` with ``apiVersion``/``kind``/``metadata`` added, as the
apiextensions-apiserver publishes them.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from devservers_sdk.localcluster.apiserver.discovery import GIT_VERSION
from devservers_sdk.localcluster.apiserver.resources import VIRTUAL_KINDS, ResourceRegistry, ResourceType

T = TypeVar("T")

REF_PREFIX = "#/components/schemas/"
_SCHEMAS_FILE = Path(__file__).with_name("builtin_schemas.json")

_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
OBJECT_META = f"{_META}.ObjectMeta"
LIST_META = f"{_META}.ListMeta"
_STATUS = f"{_META}.Status"
_DELETE_OPTIONS = f"{_META}.DeleteOptions"
_PATCH = f"{_META}.Patch"
_SCALE = "io.k8s.api.autoscaling.v1.Scale"

# What the real server accepts as a PATCH body, minus strategic merge patch (see the module docstring).
_PATCH_CONTENT_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
)


# --- built-in schemas --------------------------------------------------------------------------------


@functools.cache
def _builtin_file() -> dict[str, Any]:
    with _SCHEMAS_FILE.open(encoding="utf-8") as handle:
        return json.load(handle)


def builtin_components() -> dict[str, dict[str, Any]]:
    """Every built-in schema by component name (shared: do not mutate)."""
    return _builtin_file()["schemas"]


def builtin_schema_name(group: str, version: str, kind: str) -> str | None:
    return _builtin_file()["kinds"].get(f"{group}/{version}/{kind}")


def builtin_schema(group: str, version: str, kind: str) -> dict[str, Any] | None:
    """The OpenAPI v3 schema of a built-in kind (or its list), or None for kinds we have none for.

    Nested types are ``$ref: "#/components/schemas/<name>"``, resolvable with ``resolve_ref``.
    """
    name = builtin_schema_name(group, version, kind)
    return copy.deepcopy(builtin_components()[name]) if name else None


def resolve_ref(ref: str, components: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    table = builtin_components() if components is None else components
    return table[ref.removeprefix(REF_PREFIX)]


# --- strict field validation -------------------------------------------------------------------------


def _flatten(schema: dict[str, Any], components: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Follow ``$ref`` and merge ``allOf`` members, which is how the published documents wrap refs."""
    seen = 0
    while "$ref" in schema and seen < 64:
        schema = {
            **resolve_ref(schema["$ref"], components),
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
        seen += 1
    if "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for member in schema["allOf"]:
            flat = _flatten(member, components)
            props = {**flat.get("properties", {}), **merged.get("properties", {})}
            merged = {**flat, **merged}
            if props:
                merged["properties"] = props
        schema = merged
    return schema


class BuiltinSchemaMemo(Generic[T]):
    """``compute(node)`` remembered for nodes of the built-in schemas, which are loaded once and never change.

    Every write of a built-in object walks its whole schema (decoding checks, strict field checks), and
    following the same refs on every write was a large share of the API server's CPU under load. Pure refs
    (``{"$ref": X}``, often built afresh by callers) are keyed by their target; other nodes by identity, the
    entry holding the node so that its id is never reused.
    """

    def __init__(self, compute: Callable[[dict[str, Any]], T]) -> None:
        self._compute = compute
        self._by_ref: dict[str, T] = {}
        self._by_node: dict[int, tuple[dict[str, Any], T]] = {}

    def __call__(self, schema: dict[str, Any]) -> T:
        if len(schema) == 1 and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            if ref not in self._by_ref:
                self._by_ref[ref] = self._compute(schema)
            return self._by_ref[ref]
        node = self._by_node.get(id(schema))
        if node is not None and node[0] is schema:
            return node[1]
        value = self._compute(schema)
        self._by_node[id(schema)] = (schema, value)
        return value


_flattened_builtin = BuiltinSchemaMemo(lambda schema: _flatten(schema, builtin_components()))


def _flattened(schema: dict[str, Any], components: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``_flatten``, remembered for the built-in schemas (``BuiltinSchemaMemo``)."""
    if "$ref" not in schema and "allOf" not in schema:
        return schema
    if components is not builtin_components():
        return _flatten(schema, components)
    return _flattened_builtin(schema)


def _walk(
    schema: dict[str, Any],
    value: Any,
    path: str,
    components: dict[str, dict[str, Any]],
    found: list[str],
) -> None:
    schema = _flattened(schema, components)
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _walk(items, item, f"{path}[{index}]", components, found)
        return
    if not isinstance(value, dict):
        return
    properties: dict[str, Any] = schema.get("properties", {})
    additional = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if schema.get("x-kubernetes-embedded-resource"):
        properties = dict(properties)  # the schema is shared; add the embedded object's fields to a copy
        properties.setdefault("apiVersion", {"type": "string"})
        properties.setdefault("kind", {"type": "string"})
        properties.setdefault("metadata", {"$ref": REF_PREFIX + OBJECT_META})
    # ``{}`` (no type) accepts anything; a structural ``type: object`` without properties prunes all.
    if not properties and additional is None and (preserve or schema.get("type") != "object"):
        return
    for key, child in value.items():
        child_path = f"{path}.{key}" if path else key
        if key in properties:
            _walk(properties[key], child, child_path, components, found)
        elif isinstance(additional, dict):
            _walk(additional, child, child_path, components, found)
        elif additional is True or preserve:
            continue
        else:
            found.append(child_path)


def unknown_fields_in_schema(
    schema: dict[str, Any],
    obj: Any,
    components: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """Paths of the fields in ``obj`` that ``schema`` does not declare, in document order."""
    found: list[str] = []
    table = builtin_components() if components is None else components
    _walk(schema, obj, "", table, found)
    return found


def unknown_fields(group: str, version: str, kind: str, obj: dict[str, Any]) -> list[str]:
    """Fields of a built-in object that its Go type would reject under ``fieldValidation=Strict``.

    Paths read like the real decoder's: ``spec.containers[0].imagee``, ``metadata.labelz``. A kind
    without a built-in schema has nothing to check and yields ``[]``.
    """
    name = builtin_schema_name(group, version, kind)
    if name is None:
        return []
    return unknown_fields_in_schema({"$ref": REF_PREFIX + name}, obj)


def strict_decoding_error(paths: Iterable[str]) -> str:
    """The message kube-apiserver answers a strict request with (reason BadRequest, code 400)."""
    return "strict decoding error: " + ", ".join(f'unknown field "{path}"' for path in paths)


# --- CRD kinds ---------------------------------------------------------------------------------------


def crd_schema_name(rt: ResourceType, kind: str | None = None) -> str:
    """``devservers.example.com`` v1 DevServer -> ``com.example.devservers.v1.DevServer``, as published."""
    reversed_group = ".".join(reversed(rt.group.split("."))) if rt.group else "core"
    return f"{reversed_group}.{rt.version}.{kind or rt.kind}"


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


def crd_kind_schema(rt: ResourceType) -> dict[str, Any]:
    """A CRD's openAPIV3Schema as the server publishes it: apiVersion/kind/metadata always declared."""
    schema: dict[str, Any] = (
        copy.deepcopy(rt.schema)
        if rt.schema
        else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    )
    properties: dict[str, Any] = schema.setdefault("properties", {})
    properties.setdefault(
        "apiVersion",
        {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this representation of an object.",
        },
    )
    properties.setdefault(
        "kind",
        {
            "type": "string",
            "description": "Kind is a string value representing the REST resource this object represents.",
        },
    )
    properties["metadata"] = {
        "allOf": [{"$ref": REF_PREFIX + OBJECT_META}],
        "description": "Standard object's metadata.",
    }
    schema.setdefault("type", "object")
    schema["x-kubernetes-group-version-kind"] = [_gvk(rt.group, rt.version, rt.kind)]
    return schema


def _list_schema(rt: ResourceType, item_name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"{rt.list_kind} is a list of {rt.kind}",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": REF_PREFIX + item_name}},
            "kind": {"type": "string"},
            "metadata": {"allOf": [{"$ref": REF_PREFIX + LIST_META}]},
        },
        "x-kubernetes-group-version-kind": [_gvk(rt.group, rt.version, rt.list_kind)],
    }


# --- documents ---------------------------------------------------------------------------------------


def group_version_key(group: str, version: str) -> str:
    """The index key and URL suffix: ``api/v1`` or ``apis/apps/v1``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _stem(group: str) -> str:
    """``rbac.authorization.k8s.io`` -> ``RbacAuthorization``, as in operation ids."""
    return (
        "".join(part.capitalize() for part in group.removesuffix(".k8s.io").split(".")) if group else "Core"
    )


def _operation_prefix(group: str, version: str) -> str:
    return f"{_stem(group)}{version.capitalize()}"


def _param(
    name: str, description: str, kind: str = "string", location: str = "query", required: bool = False
) -> dict[str, Any]:
    param: dict[str, Any] = {
        "name": name,
        "in": location,
        "description": description,
        "schema": {"type": kind, "uniqueItems": True},
    }
    if required:
        param["required"] = True
    return param


_DRY_RUN = _param(
    "dryRun", "When present, indicates that modifications should not be persisted. Valid values: All."
)
_FIELD_MANAGER = _param(
    "fieldManager", "A name associated with the actor or entity that is making these changes."
)
_FIELD_VALIDATION = _param(
    "fieldValidation",
    "How the server treats unknown or duplicate fields: Ignore, Warn (the default) or Strict.",
)
_FORCE = _param(
    "force", 'Force is going to "force" Apply requests; it must be unset for other patch types.', "boolean"
)
_WRITE_PARAMS = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
_LIST_PARAMS = [
    _param("allowWatchBookmarks", "Request watch events with type BOOKMARK.", "boolean"),
    _param("continue", "The continue token from a previous list call."),
    _param("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _param("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _param("limit", "The maximum number of responses to return for a list call.", "integer"),
    _param("resourceVersion", "Constrains which resource versions the request may be served from."),
    _param("resourceVersionMatch", "How resourceVersion is applied to list calls."),
    _param(
        "sendInitialEvents", "Start a watch with synthetic ADDED events for the current state.", "boolean"
    ),
    _param("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _param("watch", "Watch for changes to the described resources.", "boolean"),
]
_DELETE_PARAMS = [
    _DRY_RUN,
    _param("gracePeriodSeconds", "The duration in seconds before the object should be deleted.", "integer"),
    _param("orphanDependents", "Deprecated: use propagationPolicy.", "boolean"),
    _param(
        "propagationPolicy",
        "Whether and how garbage collection is performed: Orphan, Background or Foreground.",
    ),
]
_NAME = _param("name", "name of the resource", location="path", required=True)
_NAMESPACE = _param(
    "namespace", "object name and auth scope, such as for teams and projects", location="path", required=True
)
_PRETTY = _param("pretty", "If 'true', then the output is pretty printed.")


def _json_body(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF_PREFIX + schema_name}}}


def _operation(
    rt: ResourceType,
    action: str,
    operation_id: str,
    gvk: dict[str, str],
    *,
    params: list[dict[str, Any]],
    response: str,
    codes: tuple[str, ...] = ("200",),
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "tags": [f"{_stem(rt.group)[0].lower()}{_stem(rt.group)[1:]}_{rt.version}"],
        "description": f"{action} {rt.kind}",
        "operationId": operation_id,
        "parameters": [copy.deepcopy(p) for p in params],
        "responses": {code: {"description": "OK", "content": _json_body(response)} for code in codes},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": dict(gvk),
    }
    op["responses"]["401"] = {"description": "Unauthorized"}
    if body is not None:
        op["requestBody"] = {"content": body, "required": True}
    return op


def _paths_for(
    rt: ResourceType, kind_name: str, list_name: str | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    base = "/" + group_version_key(rt.group, rt.version)
    prefix = _operation_prefix(rt.group, rt.version)
    scope = "Namespaced" if rt.namespaced else ""
    collection = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    scope_params = [_NAMESPACE, _PRETTY] if rt.namespaced else [_PRETTY]
    gvk = _gvk(rt.group, rt.version, rt.kind)
    verbs = set(rt.verbs)
    write_body = {"*/*": {"schema": {"$ref": REF_PREFIX + kind_name}}}
    patch_body = {media: {"schema": {"$ref": REF_PREFIX + _PATCH}} for media in _PATCH_CONTENT_TYPES}

    item: dict[str, Any] = {}
    if list_name and "list" in verbs:
        item["get"] = _operation(
            rt, "list", f"list{prefix}{scope}{rt.kind}", gvk, params=_LIST_PARAMS, response=list_name
        )
    if "create" in verbs:
        codes = ("200", "201") if rt.group_resource in VIRTUAL_KINDS else ("200", "201", "202")
        item["post"] = _operation(
            rt,
            "post",
            f"create{prefix}{scope}{rt.kind}",
            gvk,
            params=_WRITE_PARAMS,
            response=kind_name,
            codes=codes,
            body=write_body,
        )
    if list_name and "deletecollection" in verbs:
        item["delete"] = _operation(
            rt,
            "deletecollection",
            f"delete{prefix}Collection{scope}{rt.kind}",
            gvk,
            params=_DELETE_PARAMS + _LIST_PARAMS,
            response=_STATUS,
            body=_json_body(_DELETE_OPTIONS),
        )
    if item:
        yield collection, {**item, "parameters": copy.deepcopy(scope_params)}

    if rt.namespaced and list_name and "list" in verbs:
        everywhere = _operation(
            rt, "list", f"list{prefix}{rt.kind}ForAllNamespaces", gvk, params=_LIST_PARAMS, response=list_name
        )
        yield f"{base}/{rt.plural}", {"get": everywhere, "parameters": [copy.deepcopy(_PRETTY)]}

    named = f"{collection}/{{name}}"
    named_params = [_NAME, *scope_params]
    item = {}
    if "get" in verbs:
        item["get"] = _operation(
            rt, "get", f"read{prefix}{scope}{rt.kind}", gvk, params=[], response=kind_name
        )
    if "update" in verbs:
        item["put"] = _operation(
            rt,
            "put",
            f"replace{prefix}{scope}{rt.kind}",
            gvk,
            params=_WRITE_PARAMS,
            response=kind_name,
            codes=("200", "201"),
            body=write_body,
        )
    if "patch" in verbs:
        item["patch"] = _operation(
            rt,
            "patch",
            f"patch{prefix}{scope}{rt.kind}",
            gvk,
            params=[*_WRITE_PARAMS, _FORCE],
            response=kind_name,
            codes=("200", "201"),
            body=patch_body,
        )
    if "delete" in verbs:
        item["delete"] = _operation(
            rt,
            "delete",
            f"delete{prefix}{scope}{rt.kind}",
            gvk,
            params=_DELETE_PARAMS,
            response=_STATUS,
            codes=("200", "202"),
            body=_json_body(_DELETE_OPTIONS),
        )
    if item:
        yield named, {**item, "parameters": copy.deepcopy(named_params)}

    for sub in sorted(rt.subresources & {"status", "scale"}):
        sub_schema = kind_name if sub == "status" else _SCALE
        sub_gvk = gvk if sub == "status" else _gvk("autoscaling", "v1", "Scale")
        suffix = sub.capitalize()
        sub_body = {"*/*": {"schema": {"$ref": REF_PREFIX + sub_schema}}}
        yield (
            f"{named}/{sub}",
            {
                "get": _operation(
                    rt,
                    "get",
                    f"read{prefix}{scope}{rt.kind}{suffix}",
                    sub_gvk,
                    params=[],
                    response=sub_schema,
                ),
                "put": _operation(
                    rt,
                    "put",
                    f"replace{prefix}{scope}{rt.kind}{suffix}",
                    sub_gvk,
                    params=_WRITE_PARAMS,
                    response=sub_schema,
                    codes=("200", "201"),
                    body=sub_body,
                ),
                "patch": _operation(
                    rt,
                    "patch",
                    f"patch{prefix}{scope}{rt.kind}{suffix}",
                    sub_gvk,
                    params=[*_WRITE_PARAMS, _FORCE],
                    response=sub_schema,
                    codes=("200", "201"),
                    body=patch_body,
                ),
                "parameters": copy.deepcopy(named_params),
            },
        )


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref.removeprefix(REF_PREFIX)
        for child in node.values():
            yield from _refs(child)
    elif isinstance(node, list):
        for child in node:
            yield from _refs(child)


def _fallback_schema(rt: ResourceType, kind: str) -> dict[str, Any]:
    # A built-in type added to BUILTIN_TYPES before builtin_schemas.json was regenerated.
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "x-kubernetes-group-version-kind": [_gvk(rt.group, rt.version, kind)],
    }


def openapi_v3_document(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any] | None:
    """``/openapi/v3/api/v1`` or ``/openapi/v3/apis/{group}/{version}``; None when not served (404)."""
    types = sorted(
        (rt for rt in registry if rt.group == group and rt.version == version), key=lambda rt: rt.plural
    )
    if not types:
        return None
    own: dict[str, dict[str, Any]] = {}
    paths: dict[str, Any] = {}
    for rt in types:
        listable = "list" in rt.verbs
        if rt.builtin:
            kind_name = builtin_schema_name(rt.group, rt.version, rt.kind) or crd_schema_name(rt)
            list_name = builtin_schema_name(rt.group, rt.version, rt.list_kind) if listable else None
            if kind_name not in builtin_components():
                own[kind_name] = _fallback_schema(rt, rt.kind)
            if listable and list_name is None:
                list_name = crd_schema_name(rt, rt.list_kind)
                own[list_name] = _list_schema(rt, kind_name)
        else:
            kind_name = crd_schema_name(rt)
            own[kind_name] = crd_kind_schema(rt)
            list_name = crd_schema_name(rt, rt.list_kind)
            own[list_name] = _list_schema(rt, kind_name)
        for path, item in _paths_for(rt, kind_name, list_name if listable else None):
            paths[path] = item

    # Everything the paths and the kinds reach, taken from the built-in components.
    schemas: dict[str, dict[str, Any]] = dict(own)
    pending = list(_refs(paths)) + [ref for schema in own.values() for ref in _refs(schema)]
    while pending:
        name = pending.pop()
        if name in schemas:
            continue
        schema = builtin_components().get(name)
        if schema is None:
            continue
        schemas[name] = copy.deepcopy(schema)
        pending.extend(_refs(schema))

    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                }
            },
        },
    }


def serialize(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def document_hash(body: bytes) -> str:
    """The ``?hash=`` value: uppercase hex SHA-512 of the served bytes, like kube-openapi's etag."""
    return hashlib.sha512(body).hexdigest().upper()


def openapi_v3_index(registry: ResourceRegistry) -> dict[str, Any]:
    """``/openapi/v3``: every served group-version and the URL (with content hash) of its document."""
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            document = openapi_v3_document(registry, group, version)
            if document is None:
                continue
            key = group_version_key(group, version)
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={document_hash(serialize(document))}"}
    return {"paths": dict(sorted(paths.items()))}


class OpenAPIV3Cache:
    """Serialised documents and index, rebuilt only when the registry changes (a CRD comes or goes).

    The core document alone is a few hundred kilobytes; kubectl fetches it on every apply.
    """

    def __init__(self, registry: ResourceRegistry) -> None:
        self._registry = registry
        self._documents: dict[str, tuple[bytes, str] | None] = {}
        self._index: bytes | None = None
        registry.on_change(self.invalidate)

    def invalidate(self) -> None:
        self._documents.clear()
        self._index = None

    def document(self, group: str, version: str) -> tuple[bytes, str] | None:
        """The JSON body and its hash, or None when the group-version is not served."""
        key = group_version_key(group, version)
        if key not in self._documents:
            document = openapi_v3_document(self._registry, group, version)
            body = serialize(document) if document is not None else None
            self._documents[key] = (body, document_hash(body)) if body is not None else None
        return self._documents[key]

    def index(self) -> bytes:
        if self._index is None:
            paths = {}
            for group, versions in self._registry.groups().items():
                for version in versions:
                    entry = self.document(group, version)
                    if entry is not None:
                        key = group_version_key(group, version)
                        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={entry[1]}"}
            self._index = json.dumps({"paths": dict(sorted(paths.items()))}, separators=(",", ":")).encode()
        return self._index


# --- OpenAPI v2 --------------------------------------------------------------------------------------

# What client-go asks for, and what to answer with: client-go parses the response Content-Type with
# Go's mime.ParseMediaType, which rejects the "@" of the requested form ("unexpected content after
# media subtype"); kube-openapi answers with the dotted spelling for that reason.
OPENAPI_V2_PROTOBUF_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _proto_bytes(field: int, data: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2): strings and embedded messages alike."""
    length = len(data)
    varint = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        varint.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([field << 3 | 2]) + bytes(varint) + data


def openapi_v2_protobuf() -> bytes:
    """``/openapi/v2`` as a gnostic ``openapi.v2.Document`` with a version and no paths or definitions.

    kubectl still reads v2 in one place that v3 cannot replace: a ``kind: List`` manifest (what
    ``kubectl get -o yaml`` writes) is never checked against v3, so ``--validate=strict`` validates its
    items client-side against v2, and a 404 there fails the whole apply ("error validating data: the
    server could not find the requested resource"). A document that defines no kinds makes that
    client-side pass succeed (an unknown kind is not validated), after which each item is sent with
    ``fieldValidation=Strict`` and the server validates it. Protobuf is the only encoding client-go
    asks for; the message has two string fields and an ``Info`` message, encoded by hand here:
    ``Document.swagger = 1``, ``Document.info = 2``, ``Info.title = 1``, ``Info.version = 2``.
    """
    info = _proto_bytes(1, b"Kubernetes") + _proto_bytes(2, GIT_VERSION.encode())
    return _proto_bytes(1, b"2.0") + _proto_bytes(2, info)

"""The API server's semantics, independent of HTTP: what create, update, patch, delete, list and watch mean.

This is the layer the real apiserver calls its "registry" (``k8s.io/apiserver/pkg/registry/generic``): it
owns object metadata (uid, resourceVersion, generation, timestamps, generateName), optimistic concurrency,
the status subresource split, finalizers and graceful deletion, field validation modes, dry-run, and the
per-kind strategies (defaults, validation, immutable fields). The HTTP layer (``server.py``) only parses
requests and renders answers, and the built-in controllers and the kubelet call this class directly on the
server's event loop, so their writes produce exactly the watch events an external client's would.

Construct with ``ClusterAPI()``; every method is synchronous and must run on the loop that serves HTTP.
"""

from __future__ import annotations

import base64
import builtins
import datetime
import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from . import errors, openapi, patching, schema, selectors, strategies
from .admission import AdmissionRequest, PolicyAdmission
from .errors import StatusError
from .resources import VIRTUAL_KINDS, ResourceRegistry, ResourceType, types_from_crd
from .store import DEFAULT_HISTORY, Store, TooOldResourceVersion, Watcher, copy_document

FIELD_VALIDATION_MODES = ("Ignore", "Warn", "Strict")
PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+json": "apply",
}
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Objects are copied and validated recursively, so nesting is capped well below Python's recursion limit
# (the real server's JSON decoder stops at 10000 levels); deeper bodies get a 400 instead of a 500.
MAX_NESTING = 256

# An admission hook sees one write (``admission.AdmissionRequest``) and raises StatusError to refuse it. The
# ValidatingAdmissionPolicy plugin is always installed, as on a real server; tests may append their own.
AdmissionHook = Callable[[AdmissionRequest], None]


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _generation_relevant(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything but metadata and status: a change here is a change of the object's desired state."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _without_volatile(obj: dict[str, Any]) -> dict[str, Any]:
    """The object minus fields a write always sets, so a no-op update can be recognised and skipped."""
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    return {**obj, "metadata": meta}


class ClusterAPI:
    """Kubernetes API semantics over an in-memory store. See the module docstring."""

    def __init__(self, *, history: int = DEFAULT_HISTORY, user: str = "localcluster-admin") -> None:
        self.registry = ResourceRegistry.with_builtins()
        self.store = Store(history=history)
        self.admission_hooks: list[AdmissionHook] = [PolicyAdmission(self)]
        self.default_user = {"username": user, "groups": ["system:masters", "system:authenticated"]}
        self._service_ips = strategies.ServiceIPAllocator()
        self._applied_fields: dict[tuple[str, str, str, str, str], list[list[str]]] = {}
        for name in SYSTEM_NAMESPACES:
            self.create(self.rt("", "v1", "namespaces"), None, {"apiVersion": "v1", "kind": "Namespace",
                                                                   "metadata": {"name": name}})

    # -- type lookup -------------------------------------------------------------------------------

    def rt(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.registry.get(group, version, plural)
        if rt is None:
            raise StatusError(404, "NotFound", "the server could not find the requested resource",
                              details={"group": group, "kind": plural})
        return rt

    # -- reads -------------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.group_resource, namespace or "", name)
        if obj is None:
            raise errors.not_found(rt.plural, name, rt.group)
        return self._as_version(obj, rt)

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
    ) -> dict[str, Any]:
        matches = self.matcher(rt, label_selector, field_selector)
        start_after: tuple[str, str] | None = None
        revision = self.store.revision
        objects: Iterable[dict[str, Any]]
        if continue_token:
            revision, start_after = self._decode_continue(continue_token)
            # Later pages come from the first page's snapshot, as etcd serves them at its revision.
            try:
                scope = namespace if rt.namespaced else None
                objects = self.store.list_at(rt.group_resource, scope, revision)
            except TooOldResourceVersion as exc:
                raise errors.gone("The provided continue parameter is too old to display a consistent list "
                                  "result. You can start a new list without the continue parameter.") from exc
        else:
            objects = self.store.iter(rt.group_resource, namespace if rt.namespaced else None)
        items: builtins.list[dict[str, Any]] = []
        next_token = ""
        remaining = 0
        for obj in objects:
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            if start_after is not None and key <= start_after:
                continue
            if not matches(obj):
                continue
            if limit and len(items) >= limit:
                remaining += 1
                continue
            items.append(self._as_version(obj, rt))
        if remaining:
            last = items[-1]["metadata"]
            next_token = self._encode_continue(revision, (last.get("namespace", ""), last["name"]))
        list_meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if next_token:
            list_meta["continue"] = next_token
            # Only an unfiltered list can count what is left without reading it all: with a selector
            # the real server leaves the count out rather than give one that includes non-matches.
            if not label_selector and not field_selector:
                list_meta["remainingItemCount"] = remaining
        return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": list_meta, "items": items}

    def matcher(self, rt: ResourceType, label_selector: str, field_selector: str) -> Callable[[dict[str, Any]], bool]:
        try:
            labels = selectors.parse_label_selector(label_selector or "")
            fields = selectors.parse_field_selector(field_selector or "")
        except selectors.SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        unsupported = sorted(f for f in fields.fields() if not strategies.field_selectable(rt, f))
        if unsupported:
            raise errors.bad_request(f'field label not supported: {unsupported[0]}')
        if not label_selector and not field_selector:
            return lambda obj: True
        return lambda obj: labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        send_initial_events: bool = False,
    ) -> tuple[Watcher, builtins.list[tuple[str, dict[str, Any]]]]:
        """Start a watch; returns the watcher and the synthetic ADDED events that precede its stream.

        Semantics of ``resourceVersion`` as the real server: unset or "0" means "start from the current
        state" (every matching object is sent as ADDED first); a specific version replays history after it,
        or fails with 410 Gone once that history has been compacted.
        """
        matches = self.matcher(rt, label_selector, field_selector)
        ns = namespace if rt.namespaced else None
        since: int | None
        initial: builtins.list[tuple[str, dict[str, Any]]] = []
        if resource_version in ("", "0") or send_initial_events:
            since = self.store.revision
            initial = [("ADDED", o) for o in self.store.iter(rt.group_resource, ns) if matches(o)]
        else:
            since = _watch_resource_version(resource_version)
        try:
            watcher = self.store.watch(rt.group_resource, ns, matches, since=since)
        except TooOldResourceVersion as exc:
            raise errors.gone(f"too old resource version: {exc.requested} ({exc.oldest})") from exc
        if rt.version != rt.storage_version:
            initial = [(t, self._as_version(o, rt)) for t, o in initial]
        return watcher, initial

    # -- writes ------------------------------------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        obj: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
        warnings: builtins.list[str] | None = None,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        field_validation = _field_validation(field_validation, "CreateOptions")
        obj = self._check_body(rt, obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata: must be an object")
        self._check_namespace(rt, namespace, meta)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generated_name(rt, meta.get("namespace", ""), meta["generateName"])
        name = meta.get("name", "")
        obj = self._apply_schema(rt, obj, field_validation, warnings)
        meta = obj["metadata"]
        for key in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
                    "creationTimestamp", "generation", "managedFields"):
            meta.pop(key, None)
        strategies.prepare_for_create(rt, obj, self)
        causes = strategies.validate_metadata(rt, obj) + strategies.validate(rt, obj, None, self)
        if causes:
            raise errors.invalid(rt.kind, name, causes, rt.group)
        if rt.namespaced:
            self._check_namespace_open(rt, meta["namespace"], name)
        if self.store.get(rt.group_resource, meta.get("namespace", ""), name) is not None:
            raise errors.already_exists(rt.plural, name, rt.group)
        self._admit(AdmissionRequest("CREATE", rt, meta.get("namespace", ""), name, obj, None,
                                     user or self.default_user, dry_run=dry_run, warnings=warnings))
        if (rt.group, rt.plural) in VIRTUAL_KINDS:
            return strategies.answer_review(rt, obj, user or self.default_user)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if strategies.has_generation(rt, obj):
            meta["generation"] = 1
        if dry_run:
            return self._as_version(obj, rt)
        stored = self._to_storage(obj, rt)
        self._commit(rt, stored)
        return self._as_version(stored, rt)

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        obj: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        warnings: builtins.list[str] | None = None,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        field_validation = _field_validation(field_validation, "UpdateOptions")
        obj = self._check_body(rt, obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        meta["name"] = name
        self._check_namespace(rt, namespace, meta)
        old = self.store.get(rt.group_resource, namespace or "", name)
        if old is None:
            if subresource is None and strategies.allows_create_on_update(rt):
                return self.create(rt, namespace, obj, dry_run=dry_run, field_validation=field_validation,
                                   warnings=warnings, user=user)
            raise errors.not_found(rt.plural, name, rt.group)
        rv = meta.get("resourceVersion")
        if rv:
            if rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.plural, name, rt.group)
        elif not strategies.allows_unconditional_update(rt):
            raise errors.invalid(rt.kind, name, [errors.cause(
                "metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update")], rt.group)
        return self._update_from(rt, old, obj, subresource=subresource, dry_run=dry_run,
                                 field_validation=field_validation, warnings=warnings, user=user)

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        field_manager: str = "",
        force: bool = False,
        warnings: builtins.list[str] | None = None,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Apply a patch; ``patch_type`` is one of merge, json, strategic, apply (or its content type)."""
        field_validation = _field_validation(field_validation, "PatchOptions")
        patch_type = PATCH_TYPES.get(patch_type, patch_type)
        if patch_type not in ("merge", "json", "strategic", "apply"):
            raise errors.unsupported_media_type(patch_type)
        if patch_type == "strategic" and not (rt.builtin and patching.strategic_merge_supported(rt.kind)):
            raise errors.unsupported_media_type("application/strategic-merge-patch+json")
        try:
            _check_nesting(body)
        except StatusError:
            # Deeper than the emulator goes (the real decoder allows 10000 levels). When the patch already
            # breaks a typed field of a built-in kind, the real server's answer is known: it blames the patch.
            problem = _typed_patch_problem(rt, patch_type, body)
            if problem:
                try:
                    shown = json.dumps(_short_json(body))
                except RecursionError:
                    shown = '"..."'
                raise errors.invalid("", "", [errors.cause("patch", f"Invalid value: {shown}: {problem}")]) from None
            raise
        old = self.store.get(rt.group_resource, namespace or "", name)
        if patch_type == "apply":
            if not field_manager:
                raise errors.invalid("PatchOptions", "", [errors.cause(
                    "fieldManager", "Required value: is required for apply patch", "FieldValueRequired")],
                    "meta.k8s.io")
            return self._server_side_apply(rt, namespace, name, old, body, subresource=subresource, dry_run=dry_run,
                                           field_validation=field_validation, field_manager=field_manager,
                                           warnings=warnings, user=user)
        if old is None:
            raise errors.not_found(rt.plural, name, rt.group)
        current = self._as_version(old, rt)
        try:
            if patch_type == "merge":
                if not isinstance(body, dict):
                    raise patching.MalformedPatch("a merge patch must be a JSON object")
                patched = patching.apply_merge_patch(current, body)
            elif patch_type == "json":
                patched = patching.apply_json_patch(current, body)
            else:
                if not isinstance(body, dict):
                    raise patching.MalformedPatch("a strategic merge patch must be a JSON object")
                patched = patching.apply_strategic_merge_patch(current, body, kind=rt.kind)
        except patching.MalformedPatch as exc:
            raise errors.bad_request(str(exc)) from exc
        except patching.PatchFailed as exc:
            raise errors.invalid(rt.kind, name, [errors.cause("", str(exc))], rt.group) from exc
        if not isinstance(patched, dict):
            raise errors.bad_request("the patch must result in an object")
        problem = strategies.builtin_decoding_error(rt, patched)
        if problem:  # the patched object does not decode: the real server blames the patch
            shown = json.dumps(_short_json(patched))
            raise errors.invalid("", "", [errors.cause("patch", f"Invalid value: {shown}: {problem}")])
        patched.setdefault("metadata", {})
        requested_rv = self._patch_resource_version(patch_type, body)
        if requested_rv and requested_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, name, rt.group)
        if not isinstance(patched["metadata"], dict):
            raise errors.bad_request("metadata: must be an object")
        if patched["metadata"].get("name", name) != name:
            raise errors.bad_request("metadata.name: the name in the patch does not match the name on the URL")
        patched["metadata"]["name"] = name
        try:
            return self._update_from(rt, old, patched, subresource=subresource, dry_run=dry_run,
                                     field_validation=field_validation, warnings=warnings, user=user)
        except StrictDecodingError as exc:
            # A patch is decoded strictly once applied, and the real server blames the patch (422) for it.
            shown = json.dumps(_short_json(patched))
            raise errors.invalid("", "", [errors.cause("patch", f"Invalid value: {shown}: {exc.detail}")]) from exc

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        options: dict[str, Any] | None = None,
        dry_run: bool = False,
        user: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Delete (or begin deleting) an object.

        Returns the answer body and whether the object is gone now. As the real server does, types that
        do not return the deleted object get a Status; an object kept by finalizers or by a pod's grace
        period is returned with its deletionTimestamp set.
        """
        options = options or {}
        problem = strategies.decoding_error("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", options)
        if problem:
            raise errors.bad_request(problem)
        old = self.store.get(rt.group_resource, namespace or "", name)
        if old is None:
            raise errors.not_found(rt.plural, name, rt.group)
        meta = old["metadata"]
        preconditions = options.get("preconditions") or {}
        # The storage layer checks delete preconditions and names the object by its kind, not its resource.
        if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
            raise errors.conflict(rt.kind, name, "",
                                  f"the UID in the precondition ({preconditions['uid']}) does not match the UID "
                                  f"in record ({meta['uid']}). The object might have been deleted and then "
                                  "recreated")
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta["resourceVersion"]:
            raise errors.conflict(rt.kind, name, "",
                                  f"the ResourceVersion in the precondition ({preconditions['resourceVersion']}) "
                                  f"does not match the ResourceVersion in record ({meta['resourceVersion']}). "
                                  "The object might have been modified")
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.invalid("DeleteOptions", "", [errors.cause(
                "propagationPolicy", f'Unsupported value: "{policy}": supported values: "Foreground", '
                '"Background", "Orphan", "nil"', "FieldValueNotSupported")])
        policy = policy or strategies.default_propagation(rt)
        self._admit(AdmissionRequest("DELETE", rt, namespace or "", name, None, old, user or self.default_user,
                                     dry_run=dry_run))
        grace = strategies.grace_period(rt, old, options.get("gracePeriodSeconds"))
        new = copy_document(old)
        new_meta = new["metadata"]
        finalizers = strategies.finalizers_on_delete(rt, new)
        if policy == "Orphan" and "orphan" not in finalizers and not meta.get("deletionTimestamp"):
            finalizers.append("orphan")
        if policy == "Foreground" and "foregroundDeletion" not in finalizers and not meta.get("deletionTimestamp"):
            finalizers.append("foregroundDeletion")
        pending = bool(finalizers) or grace > 0 or strategies.needs_finalization(rt, new)
        if pending:
            if meta.get("deletionTimestamp"):
                current_grace = meta.get("deletionGracePeriodSeconds", 0)
                if grace >= current_grace and finalizers == list(meta.get("finalizers") or []):
                    return self._as_version(old, rt), False
            new_meta["finalizers"] = finalizers
            if not meta.get("deletionTimestamp") or grace < meta.get("deletionGracePeriodSeconds", 0):
                deadline = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=grace)
                new_meta["deletionTimestamp"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
                new_meta["deletionGracePeriodSeconds"] = grace
                if new_meta.get("generation"):
                    new_meta["generation"] += 1
            strategies.prepare_for_deletion(rt, new)
            if not finalizers and grace == 0 and not strategies.needs_finalization(rt, new):
                pending = False
            else:
                if dry_run:
                    return self._as_version(new, rt), False
                self._commit(rt, new)
                return self._as_version(new, rt), False
        if dry_run:
            return self._deleted_answer(rt, old), True
        self._remove(rt, new)
        return self._deleted_answer(rt, new), True

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        options: dict[str, Any] | None = None,
        dry_run: bool = False,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        listed = self.list(rt, namespace, label_selector=label_selector, field_selector=field_selector)
        deleted = []
        for obj in listed["items"]:
            meta = obj["metadata"]
            try:
                answer, _ = self.delete(rt, meta.get("namespace"), meta["name"], options=options, dry_run=dry_run,
                                        user=user)
            except StatusError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(answer if answer.get("kind") != "Status" else obj)
        return {**listed, "items": deleted}

    def finalize_deletion(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Remove an object whose deletion is complete (used by controllers once finalizers are gone)."""
        self._remove(rt, copy_document(obj))

    # -- scale subresource -------------------------------------------------------------------------

    def get_scale(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        if rt.scale is None:
            raise errors.not_found(f"{rt.plural}/scale", name, rt.group)
        obj = self.get(rt, namespace, name)
        return strategies.scale_of(rt, obj)

    def update_scale(self, rt: ResourceType, namespace: str | None, name: str, replicas: Any,
                     *, user: dict[str, Any] | None = None) -> dict[str, Any]:
        if rt.scale is None:
            raise errors.not_found(f"{rt.plural}/scale", name, rt.group)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid("Scale", name, [errors.cause(
                "spec.replicas", f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0")],
                "autoscaling")
        old = self.get(rt, namespace, name)
        new = copy_document(old)
        strategies.set_path(new, rt.scale.spec_replicas_path, replicas)
        updated = self._update_from(rt, self.store.get(rt.group_resource, namespace or "", name) or old, new,
                                    subresource=None, dry_run=False, field_validation="Ignore", warnings=None,
                                    user=user)
        return strategies.scale_of(rt, updated)

    # -- internals ---------------------------------------------------------------------------------

    def _update_from(
        self,
        rt: ResourceType,
        old: dict[str, Any],
        obj: dict[str, Any],
        *,
        subresource: str | None,
        dry_run: bool,
        field_validation: str,
        warnings: builtins.list[str] | None,
        user: dict[str, Any] | None,
    ) -> dict[str, Any]:
        old_versioned = self._as_version(old, rt)
        old_meta = old["metadata"]
        name = old_meta["name"]
        uid = obj["metadata"].get("uid")
        if uid and uid != old_meta["uid"]:
            raise errors.conflict(rt.plural, name, rt.group,
                                  f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                                  f"{old_meta['uid']}")
        if subresource == "status":
            new = copy_document(old_versioned)
            if "status" in obj:
                new["status"] = copy_document(obj["status"])
            else:
                new.pop("status", None)
        else:
            new = copy_document(obj)
            if rt.has_status:
                if "status" in old_versioned:
                    new["status"] = copy_document(old_versioned["status"])
                else:
                    new.pop("status", None)
        new = self._apply_schema(rt, new, field_validation, warnings)
        meta = new["metadata"]
        for key in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace",
                    "generation", "selfLink"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta.pop("managedFields", None)
        if subresource == "status":
            meta.clear()
            meta.update(copy_document(old_meta))
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise errors.invalid(rt.kind, name, [errors.cause(
                    "metadata.finalizers", f"Forbidden: no new finalizers can be added if the object is being "
                    f"deleted, found new finalizers {json.dumps(sorted(added))}", "FieldValueForbidden")], rt.group)
        strategies.prepare_for_update(rt, new, old_versioned, self, subresource)
        causes = strategies.validate_metadata(rt, new) + strategies.validate(rt, new, old_versioned, self)
        if causes:
            raise errors.invalid(rt.kind, name, causes, rt.group)
        if meta.get("generation") is not None and _generation_relevant(new) != _generation_relevant(old_versioned):
            meta["generation"] = old_meta.get("generation", 1) + 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if _without_volatile(new) == _without_volatile(old_versioned):
            return old_versioned
        self._admit(AdmissionRequest("UPDATE", rt, old_meta.get("namespace", ""), name, new, old_versioned,
                                     user or self.default_user, subresource=subresource or "", dry_run=dry_run,
                                     warnings=warnings))
        if dry_run:
            return new
        stored = self._to_storage(new, rt)
        if old_meta.get("deletionTimestamp") and not stored["metadata"].get("finalizers") \
                and not strategies.needs_finalization(rt, stored) \
                and not strategies.waits_for_grace(rt, stored):
            self._remove(rt, stored)
            return self._as_version(stored, rt)
        self._commit(rt, stored)
        return self._as_version(stored, rt)

    def _server_side_apply(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        old: dict[str, Any] | None,
        body: Any,
        *,
        subresource: str | None,
        dry_run: bool,
        field_validation: str,
        field_manager: str,
        warnings: builtins.list[str] | None,
        user: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Server-side apply, approximated: merge the configuration in, and remove the fields this manager
        applied last time but no longer sets. Ownership conflicts between managers are not detected."""
        config = self._check_body(rt, body)
        config.setdefault("metadata", {})
        if config["metadata"].get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({config['metadata'].get('name')}) does not match the name on the URL "
                f"({name})")
        config["metadata"]["name"] = name
        key = (rt.group, rt.plural, namespace or "", name, field_manager)
        paths = _leaf_paths(config)
        if old is None:
            created = self.create(rt, namespace, config, dry_run=dry_run, field_validation=field_validation,
                                  warnings=warnings, user=user)
            if not dry_run:
                self._applied_fields[key] = paths
            return created
        current = self._as_version(old, rt)
        if rt.builtin and patching.strategic_merge_supported(rt.kind):
            merged = patching.apply_strategic_merge_patch(current, config, kind=rt.kind)
        else:
            merged = patching.apply_merge_patch(current, _without_nulls(config))
        for path in self._applied_fields.get(key, []):
            owned_by_apply = path[0] != "metadata" or path[:2] in (["metadata", "labels"], ["metadata", "annotations"])
            if owned_by_apply and path not in paths:
                _delete_path(merged, path)
        result = self._update_from(rt, old, merged, subresource=subresource, dry_run=dry_run,
                                   field_validation=field_validation, warnings=warnings, user=user)
        if not dry_run:
            self._applied_fields[key] = paths
        return result

    def _check_body(self, rt: ResourceType, obj: Any) -> dict[str, Any]:
        if obj is None:  # JSON null decodes into the zero value of the type: an empty object
            obj = {}
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON or YAML object")
        _check_nesting(obj)
        obj = copy_document(obj)
        if rt.builtin:
            # Typed decoding fills kind and apiVersion from the URL; only custom resources must carry them.
            obj.setdefault("kind", rt.kind)
            obj.setdefault("apiVersion", rt.api_version)
        kind = obj.get("kind")
        api_version = obj.get("apiVersion")
        if not kind:
            raise errors.bad_request(f"Object 'Kind' is missing in '{_short_json(obj)}'")
        if not api_version:
            raise errors.bad_request(f"Object 'apiVersion' is missing in '{_short_json(obj)}'")
        if kind != rt.kind or api_version != rt.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})" if api_version != rt.api_version else
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        problem = strategies.builtin_decoding_error(rt, obj)
        if problem:
            raise errors.bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                     f"{problem}")
        return obj

    def _check_namespace(self, rt: ResourceType, namespace: str | None, meta: dict[str, Any]) -> None:
        if rt.namespaced:
            given = meta.get("namespace")
            if given and namespace and given != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace or given or "default"
        else:
            meta.pop("namespace", None)

    def _check_namespace_open(self, rt: ResourceType, namespace: str, name: str) -> None:
        ns = self.store.get(("", "namespaces"), "", namespace)
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                f'{rt.plural} "{name}" is forbidden: unable to create new content in namespace {namespace} '
                f"because it is being terminated")

    def _apply_schema(self, rt: ResourceType, obj: dict[str, Any], field_validation: str,
                      warnings: builtins.list[str] | None) -> dict[str, Any]:
        if field_validation not in FIELD_VALIDATION_MODES:
            raise errors.bad_request(
                f'fieldValidation must be one of "Ignore", "Warn", or "Strict", got "{field_validation}"')
        unknown: builtins.list[str]
        if rt.schema is not None:
            # The apiserver's order: prune unknown fields, then default, then validate.
            obj, unknown = schema.prune(rt.schema, obj)
            obj = schema.apply_defaults(rt.schema, obj)
            # metadata is decoded as an ObjectMeta, which drops (and reports) the fields it does not know.
            meta_unknown = [f"metadata.{p}" for p in openapi.unknown_fields_in_schema(
                {"$ref": openapi.REF_PREFIX + openapi.OBJECT_META}, obj.get("metadata"))]
            unknown = meta_unknown + unknown
        else:
            unknown = strategies.unknown_builtin_fields(rt, obj)
        if unknown:
            # Typed decoding drops unknown fields whatever the validation mode; the mode only decides
            # whether they are ignored, warned about or refused.
            obj = _without_paths(obj, unknown)
        if unknown and field_validation == "Strict":
            raise StrictDecodingError(rt, openapi.strict_decoding_error(unknown))
        if unknown and field_validation == "Warn" and warnings is not None:
            warnings.extend(f'unknown field "{path}"' for path in unknown)
        return obj

    def _admit(self, request: AdmissionRequest) -> None:
        for hook in self.admission_hooks:
            hook(request)

    def _commit(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        revision = self.store.next_revision()
        obj["metadata"]["resourceVersion"] = str(revision)
        self.store.put(rt.group_resource, obj, revision=revision)
        strategies.after_write(rt, obj, self)

    def _remove(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        revision = self.store.next_revision()
        meta["resourceVersion"] = str(revision)
        self.store.remove(rt.group_resource, meta.get("namespace", ""), meta["name"], final=obj)
        strategies.after_remove(rt, obj, self)

    def _deleted_answer(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        if strategies.returns_deleted_object(rt):
            return self._as_version(obj, rt)
        details = {"name": obj["metadata"]["name"], "kind": rt.plural, "uid": obj["metadata"]["uid"]}
        if rt.group:
            details["group"] = rt.group
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def _as_version(self, obj: dict[str, Any], rt: ResourceType) -> dict[str, Any]:
        """Objects are stored in one version; CRDs serving several versions convert with strategy None."""
        if obj.get("apiVersion") == rt.api_version:
            return obj
        return {**obj, "apiVersion": rt.api_version}

    def _to_storage(self, obj: dict[str, Any], rt: ResourceType) -> dict[str, Any]:
        if rt.storage_version and rt.storage_version != rt.version:
            group = f"{rt.group}/" if rt.group else ""
            return {**obj, "apiVersion": f"{group}{rt.storage_version}"}
        return obj

    def _generated_name(self, rt: ResourceType, namespace: str, prefix: str) -> str:
        for _ in range(10):
            suffix = "".join(secrets.choice(_GENERATE_NAME_ALPHABET) for _ in range(5))
            name = f"{prefix[:58]}{suffix}"
            if self.store.get(rt.group_resource, namespace, name) is None:
                return name
        raise errors.StatusError(500, "AlreadyExists", "could not generate a unique name; try again")

    def parse_resource_version(self, value: str) -> int:
        """A list's ``resourceVersion``: 400 BadRequest, worded as the real server, when not a revision."""
        revision = _revision(value)
        if revision is None:
            raise errors.bad_request(f"invalid resource version: {_revision_problem(value)}")
        return revision

    def _patch_resource_version(self, patch_type: str, body: Any) -> str | None:
        if patch_type in ("merge", "strategic") and isinstance(body, dict):
            meta = body.get("metadata")
            if isinstance(meta, dict):
                rv = meta.get("resourceVersion")
                return str(rv) if rv else None
        return None

    def _encode_continue(self, revision: int, key: tuple[str, str]) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": list(key)}).encode()
        return base64.urlsafe_b64encode(raw).decode()

    def _decode_continue(self, token: str) -> tuple[int, tuple[str, str]]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                     "(version meta.k8s.io/v1)") from exc

    # -- CRDs --------------------------------------------------------------------------------------

    # What a restart of the emulator does not keep: the node's own records (the agent registers again) and
    # what only made sense for processes that are gone (pods, their Events, the endpoints pointing at them).
    # The controllers and the operator build those again from what is kept.
    _NOT_KEPT = frozenset({("", "pods"), ("", "events"), ("events.k8s.io", "events"), ("", "nodes"),
                           ("coordination.k8s.io", "leases"), ("", "endpoints"),
                           ("discovery.k8s.io", "endpointslices")})

    def snapshot(self) -> dict[str, Any]:
        """Every object worth keeping across a restart, for ``restore`` (``devctl local down``, then ``up``)."""
        objects = [{"group": group, "resource": resource, "object": obj}
                   for group, resource in self.store.group_resources()
                   if (group, resource) not in self._NOT_KEPT
                   for obj in self.store.iter((group, resource))]
        return {"revision": self.store.revision, "objects": objects}

    def restore(self, snapshot: dict[str, Any]) -> int:
        """Load a ``snapshot`` into an empty store (CRDs first, so their types are served); how many objects."""
        entries = sorted(snapshot.get("objects") or [],
                         key=lambda e: (e["group"], e["resource"]) != ("apiextensions.k8s.io", "customresourcedefinitions"))
        for entry in entries:
            gr = (entry["group"], entry["resource"])
            obj = entry["object"]
            self.store.restore(gr, obj)
            if gr == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self.serve_crd(obj)
            elif gr == ("", "services"):
                cluster_ip = (obj.get("spec") or {}).get("clusterIP")
                if cluster_ip and cluster_ip != "None":
                    self.service_ips.reserve(cluster_ip)
        return len(entries)

    def serve_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec", {})
        self.registry.set_crd_types(spec.get("group", ""), spec.get("names", {}).get("plural", ""),
                                    types_from_crd(crd))

    def unserve_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec", {})
        group, plural = spec.get("group", ""), spec.get("names", {}).get("plural", "")
        self.registry.set_crd_types(group, plural, [])
        self.store.drop_resource((group, plural))

    @property
    def service_ips(self) -> strategies.ServiceIPAllocator:
        return self._service_ips


def _short_json(obj: Any) -> str:
    text = json.dumps(obj, separators=(",", ":"))
    return text if len(text) < 200 else text[:197] + "..."


def _leaf_paths(obj: Any, prefix: list[str] | None = None) -> list[list[str]]:
    prefix = prefix or []
    if isinstance(obj, dict) and obj:
        paths: list[list[str]] = []
        for key, value in obj.items():
            paths.extend(_leaf_paths(value, [*prefix, key]))
        return paths
    return [prefix]


def _delete_path(obj: Any, path: list[str]) -> None:
    for key in path[:-1]:
        if not isinstance(obj, dict) or key not in obj:
            return
        obj = obj[key]
    if isinstance(obj, dict):
        obj.pop(path[-1], None)


def _without_nulls(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_nulls(v) for k, v in obj.items() if v is not None}
    return obj


def _without_paths(obj: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """A copy of ``obj`` without the fields at ``paths`` (``spec.containers[0].imagee``, ``bogus``)."""
    obj = copy_document(obj)
    for path in paths:
        tokens = re.findall(r"\[\d+\]|[^.\[\]]+", path)
        target: Any = obj
        for token in tokens[:-1]:
            if token.startswith("[") and isinstance(target, list) and int(token[1:-1]) < len(target):
                target = target[int(token[1:-1])]
            elif not token.startswith("[") and isinstance(target, dict):
                target = target.get(token)
            else:
                target = None
                break
        if isinstance(target, dict) and tokens:
            target.pop(tokens[-1], None)
    return obj


class StrictDecodingError(errors.StatusError):
    """Unknown fields under ``fieldValidation=Strict``: 400 on a create or an update, re-raised on a patch."""

    def __init__(self, rt: ResourceType, detail: str) -> None:
        super().__init__(400, "BadRequest",
                         f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {detail}')
        self.detail = detail


def _revision(value: str) -> int | None:
    """``value`` as etcd's revision (Go's ParseUint: ASCII digits only), or None."""
    return int(value) if value.isascii() and value.isdigit() else None


def _revision_problem(value: str) -> str:
    return f'resourceVersion: Invalid value: "{value}": strconv.ParseUint: parsing "{value}": invalid syntax'


def _watch_resource_version(value: str) -> int:
    """A watch's ``resourceVersion``. Released servers answer a bad one with 500 and no reason (unlike a
    list's 400; kubernetes/kubernetes#139485): clients see what a real cluster tells them."""
    revision = _revision(value)
    if revision is None:
        raise errors.StatusError(500, "", _revision_problem(value))
    return revision


def _typed_patch_problem(rt: ResourceType, patch_type: str, body: Any) -> str | None:
    """The decoding error a merge-style patch of a built-in kind is bound to cause, whatever it patches:
    every non-null value of such a patch ends up in the result (only as deep as the kind's own schema)."""
    if patch_type not in ("merge", "strategic") or not rt.builtin or not isinstance(body, dict):
        return None
    try:
        return strategies.builtin_decoding_error(rt, body)
    except RecursionError:
        return None


def _check_nesting(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_NESTING:
            raise errors.bad_request(f"json: exceeded max depth: the body is nested more than {MAX_NESTING} "
                                     "levels deep")
        stack.extend((child, depth + 1) for child in children)


def _field_validation(mode: str, options_kind: str) -> str:
    """Validate the fieldValidation option as the handlers do (422 on the options), "" meaning the default."""
    if mode == "":
        return "Warn"
    if mode not in FIELD_VALIDATION_MODES:
        raise errors.invalid(options_kind, "", [errors.cause(
            "fieldValidation", f'Unsupported value: "{mode}": supported values: "Ignore", "Strict", "Warn"',
            "FieldValueNotSupported")], "meta.k8s.io")
    return mode

"""The built-in controllers the product relies on, reduced to what a client can observe.

* garbage collector: ownerReferences with Background, Foreground and Orphan propagation, and dependents
  whose owners never existed or are gone;
* namespace controller: a deleted namespace empties itself (respecting finalizers and pod grace periods)
  before it disappears, and every namespace gets its ``default`` ServiceAccount;
* StatefulSet controller: pods ``<name>-<ordinal>`` with stable hostnames, PVCs from
  ``volumeClaimTemplates``, OrderedReady and Parallel management, rolling template updates one pod at a
  time from the highest ordinal, and an honest ``status``;
* volume provisioner: a PVC binds at once to a new PersistentVolume backed by a directory under the state
  dir (so data survives pod deletion), ``kubernetes.io/pvc-protection`` keeps a claim while a pod uses it,
  and the ``Delete`` reclaim policy removes the directory when the claim goes;
* CRD cleanup: deleting a CRD first deletes its custom resources, honouring their finalizers.

Controllers are level-triggered: store events enqueue keys, and each reconcile reads current state, so a
missed or duplicated event does no harm. They run on the API server's loop and call ``ClusterAPI``
directly, producing the same watch events an external controller's writes would.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import datetime
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..apiserver.api import ClusterAPI
from ..apiserver.errors import StatusError
from ..apiserver.resources import BUILTIN_TYPES, ResourceType
from ..apiserver.store import GroupResource, StoredEvent
from ..apiserver.strategies import (
    CRD_CLEANUP_FINALIZER,
    DEFAULT_STORAGE_CLASS_ANNOTATION,
    PVC_PROTECTION_FINALIZER,
)
from .events import EventRecorder

log = logging.getLogger(__name__)

ObjectRef = tuple[GroupResource, str, str]  # (group/resource, namespace, name)
PODS: GroupResource = ("", "pods")
PVCS: GroupResource = ("", "persistentvolumeclaims")
PVS: GroupResource = ("", "persistentvolumes")
STATEFULSETS: GroupResource = ("apps", "statefulsets")
NAMESPACES: GroupResource = ("", "namespaces")
NODES: GroupResource = ("", "nodes")
CRDS: GroupResource = ("apiextensions.k8s.io", "customresourcedefinitions")
PROVISIONER = "localcluster.devservers.io/hostpath"
BUILTIN_GROUP_RESOURCES = frozenset(rt.group_resource for rt in BUILTIN_TYPES)


class WorkQueue:
    """A deduplicating queue of keys with delayed requeue, like client-go's rate-limited workqueue."""

    def __init__(self, name: str, reconcile: Callable[[Any], float | None]) -> None:
        self.name = name
        self._reconcile = reconcile
        self._pending: collections.OrderedDict[Any, None] = collections.OrderedDict()
        self._wakeup = asyncio.Event()
        self._delayed: dict[Any, asyncio.TimerHandle] = {}

    def add(self, key: Any) -> None:
        self._pending[key] = None
        self._wakeup.set()

    def add_after(self, key: Any, delay: float) -> None:
        if key in self._delayed:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._delayed.pop(key, None)
            self.add(key)

        self._delayed[key] = loop.call_later(delay, fire)

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            processed = 0
            while self._pending:
                key, _ = self._pending.popitem(last=False)
                try:
                    retry = self._reconcile(key)
                except StatusError as exc:
                    if exc.code not in (404, 409):
                        log.warning("%s: reconciling %s failed: %s", self.name, key, exc.message)
                    retry = 0.2
                except Exception:
                    log.exception("%s: reconciling %s crashed", self.name, key)
                    retry = 1.0
                if retry is not None:
                    self.add_after(key, retry)
                processed += 1
                if processed % 50 == 0:
                    await asyncio.sleep(0)

    def cancel_timers(self) -> None:
        for handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()


class OwnerIndex:
    """Who owns whom, and where each uid lives: the garbage collector's graph, shared by controllers."""

    def __init__(self) -> None:
        self.dependents: dict[str, set[ObjectRef]] = collections.defaultdict(set)
        self.by_uid: dict[str, ObjectRef] = {}

    def observe(self, event: StoredEvent) -> None:
        meta = event.obj["metadata"]
        ref: ObjectRef = (event.group_resource, meta.get("namespace", ""), meta["name"])
        old_owners = _owner_uids(event.old) if event.old else set()
        new_owners = set() if event.type == "DELETED" else _owner_uids(event.obj)
        for uid in old_owners - new_owners:
            self.dependents[uid].discard(ref)
            if not self.dependents[uid]:
                del self.dependents[uid]
        for uid in new_owners:
            self.dependents[uid].add(ref)
        if event.type == "DELETED":
            self.by_uid.pop(meta.get("uid", ""), None)
        else:
            self.by_uid[meta["uid"]] = ref


def _owner_uids(obj: dict[str, Any]) -> set[str]:
    return {ref["uid"] for ref in obj["metadata"].get("ownerReferences") or [] if isinstance(ref, dict)
            and ref.get("uid")}


class Controllers:
    """Starts and stops the built-in controllers on the API server's loop."""

    def __init__(self, api: ClusterAPI, *, state_dir: Path, root_ca_pem: bytes | None = None) -> None:
        self.api = api
        self.state_dir = state_dir
        self.root_ca_pem = root_ca_pem
        self.owners = OwnerIndex()
        self.events = EventRecorder(api, host="")
        self._queues = {
            "gc": WorkQueue("garbage-collector", self._reconcile_gc),
            "namespace": WorkQueue("namespace", self._reconcile_namespace),
            "statefulset": WorkQueue("statefulset", self._reconcile_statefulset),
            "pvc": WorkQueue("persistentvolume-binder", self._reconcile_pvc),
            "crd": WorkQueue("crd-finalizer", self._reconcile_crd),
            "taint": WorkQueue("taint-eviction", self._reconcile_node_taints),
        }
        self._tasks: list[asyncio.Task[None]] = []
        for gr in api.store.group_resources():
            for obj in api.store.iter(gr):
                self.owners.observe(StoredEvent(0, gr, "ADDED", obj, None))
        api.store.on_event(self._on_event)

    async def start(self) -> None:
        # Objects may have been loaded since __init__ (a restarted cluster that keeps its objects): index
        # them, and look at every StatefulSet and claim once, as real controllers do after their first list
        # (the pods of a kept StatefulSet are gone with the processes of the previous run).
        for gr in self.api.store.group_resources():
            for obj in self.api.store.iter(gr):
                self.owners.observe(StoredEvent(0, gr, "ADDED", obj, None))
        self._ensure_default_storage_class()
        for ns in self.api.store.iter(NAMESPACES):
            self._queues["namespace"].add(ns["metadata"]["name"])
        for sts in self.api.store.iter(STATEFULSETS):
            self._queues["statefulset"].add((sts["metadata"].get("namespace", ""), sts["metadata"]["name"]))
        for claim in self.api.store.iter(PVCS):
            meta = claim["metadata"]
            self._queues["pvc"].add(("claim", meta.get("namespace", ""), meta["name"], meta.get("uid", "")))
        self._tasks = [asyncio.create_task(q.run(), name=f"controller-{q.name}") for q in self._queues.values()]

    async def stop(self) -> None:
        for queue in self._queues.values():
            queue.cancel_timers()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _rt(self, gr: GroupResource) -> ResourceType | None:
        versions = self.api.registry.versions_of(*gr)
        if not versions:
            return None
        return next((rt for rt in versions if rt.version == rt.storage_version), versions[0])

    # -- event routing ------------------------------------------------------------------------------

    def _on_event(self, event: StoredEvent) -> None:
        self.owners.observe(event)
        gr = event.group_resource
        meta = event.obj["metadata"]
        namespace = meta.get("namespace", "")
        if event.type == "DELETED":
            for dependent in self.owners.dependents.get(meta.get("uid", ""), ()):
                self._queues["gc"].add(("dependent", dependent))
            if namespace:
                self._queues["namespace"].add(namespace)
            if gr not in BUILTIN_GROUP_RESOURCES:
                self._queues["crd"].add(f"{gr[1]}.{gr[0]}")
        elif meta.get("deletionTimestamp"):
            finalizers = meta.get("finalizers") or []
            if "orphan" in finalizers or "foregroundDeletion" in finalizers:
                self._queues["gc"].add(("owner", (gr, namespace, meta["name"])))
        elif event.type == "ADDED" and meta.get("ownerReferences"):
            self._queues["gc"].add(("dependent", (gr, namespace, meta["name"])))
        if (meta.get("deletionTimestamp") or event.type == "DELETED") and meta.get("ownerReferences"):
            for owner_uid in _owner_uids(event.obj):
                owner = self.owners.by_uid.get(owner_uid)
                if owner is not None:
                    self._queues["gc"].add(("owner", owner))
        if gr == NAMESPACES:
            self._queues["namespace"].add(meta["name"])
        elif gr == STATEFULSETS:
            self._queues["statefulset"].add((namespace, meta["name"]))
        elif gr == PODS:
            self._route_pod(event)
        elif gr == PVCS:
            self._queues["pvc"].add(("claim", namespace, meta["name"], meta.get("uid", "")))
        elif gr == CRDS:
            self._queues["crd"].add(meta["name"])
        elif gr == NODES and event.type != "DELETED" and any(
                taint.get("effect") == "NoExecute" for taint in (event.obj.get("spec") or {}).get("taints") or []):
            self._queues["taint"].add(meta["name"])

    def _route_pod(self, event: StoredEvent) -> None:
        meta = event.obj["metadata"]
        for ref in meta.get("ownerReferences") or []:
            if ref.get("kind") == "StatefulSet" and ref.get("controller"):
                self._queues["statefulset"].add((meta.get("namespace", ""), ref["name"]))
        if event.type == "DELETED" or meta.get("deletionTimestamp") or \
                event.obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            for claim in _claims_of(event.obj):
                self._queues["pvc"].add(("claim", meta.get("namespace", ""), claim, ""))

    # -- garbage collector --------------------------------------------------------------------------

    def _reconcile_gc(self, key: tuple[str, ObjectRef]) -> float | None:
        kind, (gr, namespace, name) = key
        obj = self.api.store.get(gr, namespace, name)
        rt = self._rt(gr)
        if obj is None or rt is None:
            return None
        if kind == "owner":
            return self._finish_owner(rt, obj)
        return self._collect_dependent(rt, obj)

    def _collect_dependent(self, rt: ResourceType, obj: dict[str, Any]) -> float | None:
        meta = obj["metadata"]
        refs = meta.get("ownerReferences") or []
        live, foreground = [], False
        for ref in refs:
            owner = self._owner_object(ref, meta.get("namespace", ""))
            if owner is None:
                continue
            owner_meta = owner["metadata"]
            if owner_meta.get("deletionTimestamp") and "foregroundDeletion" in (owner_meta.get("finalizers") or []):
                foreground = foreground or bool(ref.get("blockOwnerDeletion"))
                continue
            live.append(ref)
        if len(live) == len(refs) and not foreground:
            return None
        if meta.get("deletionTimestamp"):
            return None
        if live and not foreground:
            self.api.update(rt, meta.get("namespace"), meta["name"],
                            {**obj, "metadata": {**meta, "ownerReferences": live}})
            return None
        if not live:
            policy = "Foreground" if foreground else "Background"
            self.api.delete(rt, meta.get("namespace"), meta["name"], options={"propagationPolicy": policy})
        return None

    def _owner_object(self, ref: dict[str, Any], namespace: str) -> dict[str, Any] | None:
        located = self.owners.by_uid.get(ref.get("uid", ""))
        if located is None:
            return None
        gr, ns, name = located
        return self.api.store.get(gr, ns, name)

    def _finish_owner(self, rt: ResourceType, owner: dict[str, Any]) -> float | None:
        meta = owner["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        dependents = sorted(self.owners.dependents.get(meta["uid"], ()))
        if "orphan" in finalizers:
            for gr, namespace, name in dependents:
                dependent = self.api.store.get(gr, namespace, name)
                dep_rt = self._rt(gr)
                if dependent is None or dep_rt is None:
                    continue
                refs = [r for r in dependent["metadata"].get("ownerReferences") or [] if r.get("uid") != meta["uid"]]
                self.api.update(dep_rt, namespace or None, name,
                                {**dependent, "metadata": {**dependent["metadata"], "ownerReferences": refs}})
            finalizers.remove("orphan")
        elif "foregroundDeletion" in finalizers:
            blocking = False
            for gr, namespace, name in dependents:
                dependent = self.api.store.get(gr, namespace, name)
                dep_rt = self._rt(gr)
                if dependent is None or dep_rt is None:
                    continue
                ref: dict[str, Any] = next((r for r in dependent["metadata"].get("ownerReferences") or []
                            if r.get("uid") == meta["uid"]), {})
                blocking = blocking or bool(ref.get("blockOwnerDeletion"))
                if not dependent["metadata"].get("deletionTimestamp"):
                    self.api.delete(dep_rt, namespace or None, name, options={"propagationPolicy": "Foreground"})
            if blocking:
                return None
            finalizers.remove("foregroundDeletion")
        else:
            return None
        current = self.api.store.get(rt.group_resource, meta.get("namespace", ""), meta["name"])
        if current is not None:
            self.api.update(rt, meta.get("namespace"), meta["name"],
                            {**current, "metadata": {**current["metadata"], "finalizers": finalizers}})
        return None

    # -- namespaces ---------------------------------------------------------------------------------

    def _reconcile_namespace(self, name: str) -> float | None:
        ns = self.api.store.get(NAMESPACES, "", name)
        if ns is None:
            return None
        if not ns["metadata"].get("deletionTimestamp"):
            self._ensure_default_service_account(name)
            self._ensure_root_ca_config_map(name)
            return None
        remaining = 0
        for gr in self.api.store.group_resources():
            rt = self._rt(gr)
            if rt is None or not rt.namespaced:
                continue
            for obj in list(self.api.store.iter(gr, name)):
                remaining += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    try:
                        self.api.delete(rt, name, obj["metadata"]["name"])
                    except StatusError as exc:
                        if exc.code != 404:
                            raise
        if remaining:
            return 1.0
        if ns.get("spec", {}).get("finalizers"):
            self.api.update(self._rt(NAMESPACES), None, name, {**ns, "spec": {**ns["spec"], "finalizers": []}})  # type: ignore[arg-type]
        return None

    def _ensure_default_service_account(self, namespace: str) -> None:
        if self.api.store.get(("", "serviceaccounts"), namespace, "default") is not None:
            return
        try:
            self.api.create(self.api.rt("", "v1", "serviceaccounts"), namespace,
                            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
        except StatusError as exc:
            if exc.code not in (403, 409):
                raise

    def _ensure_root_ca_config_map(self, namespace: str) -> None:
        """kube-controller-manager's root-CA publisher: every namespace gets the cluster CA as
        ``kube-root-ca.crt``, which the projected service-account volume of every pod mounts."""
        if self.root_ca_pem is None:
            return
        if self.api.store.get(("", "configmaps"), namespace, "kube-root-ca.crt") is not None:
            return
        try:
            self.api.create(self.api.rt("", "v1", "configmaps"), namespace, {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kube-root-ca.crt",
                             "annotations": {"kubernetes.io/description": (
                                 "Contains a CA bundle that can be used to verify the kube-apiserver when using "
                                 "internal endpoints such as the internal service IP or kubernetes.default.svc. "
                                 "No other usage is guaranteed across distributions of Kubernetes clusters.")}},
                "data": {"ca.crt": self.root_ca_pem.decode()},
            })
        except StatusError as exc:
            if exc.code not in (403, 409):
                raise

    # -- StatefulSets -------------------------------------------------------------------------------

    def _reconcile_statefulset(self, key: tuple[str, str]) -> float | None:
        namespace, name = key
        sts = self.api.store.get(STATEFULSETS, namespace, name)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return None
        return StatefulSetReconciler(self, sts).run()

    # -- taint eviction -------------------------------------------------------------------------------

    def _reconcile_node_taints(self, node_name: str) -> float | None:
        """kube-controller-manager's taint-eviction controller, reduced: a pod on a node with a NoExecute taint
        it does not tolerate is marked DisruptionTarget (DeletionByTaintManager) and deleted gracefully. A
        toleration with tolerationSeconds is honoured by looking again when it runs out."""
        from .scheduler import tolerates

        node = self.api.store.get(NODES, "", node_name)
        if node is None:
            return None
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        pods_rt = self._rt(PODS)
        assert pods_rt is not None
        again: list[float] = []
        for pod in list(self.api.store.iter(PODS)):
            meta, spec = pod["metadata"], pod.get("spec") or {}
            if spec.get("nodeName") != node_name or meta.get("deletionTimestamp"):
                continue
            tolerations = spec.get("tolerations") or []
            untolerated = [t for t in taints if not tolerates(tolerations, t)]
            limits = [int(tol["tolerationSeconds"]) for t in taints for tol in tolerations
                      if tol.get("tolerationSeconds") is not None and tolerates([tol], t)]
            if not untolerated and limits:
                added = min((_parse_rfc3339(t.get("timeAdded")) or 0.0) for t in taints)
                wait = added + min(limits) - _now()
                if wait > 0:
                    again.append(wait)
                    continue
            elif not untolerated:
                continue
            status = dict(pod.get("status") or {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
            conditions.append({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                               "message": "Taint manager: deleting due to NoExecute taint",
                               "lastTransitionTime": _rfc3339_now(), "lastProbeTime": None})
            try:
                self.api.update(pods_rt, meta.get("namespace"), meta["name"],
                                {**pod, "status": {**status, "conditions": conditions}}, subresource="status")
                self.api.delete(pods_rt, meta.get("namespace"), meta["name"])
            except StatusError as exc:  # changed or gone meanwhile: look again
                log.debug("taint eviction of %s/%s: %s", meta.get("namespace"), meta["name"], exc)
                again.append(1.0)
        return min(again) if again else None

    # -- volumes ------------------------------------------------------------------------------------

    def _ensure_default_storage_class(self) -> None:
        classes = self.api.rt("storage.k8s.io", "v1", "storageclasses")
        if self.api.store.count(classes.group_resource):
            return
        self.api.create(classes, None, {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard", "annotations": {DEFAULT_STORAGE_CLASS_ANNOTATION: "true"}},
            "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
        })

    def _reconcile_pvc(self, key: tuple[str, str, str, str]) -> float | None:
        _, namespace, name, uid = key
        claims = self.api.rt("", "v1", "persistentvolumeclaims")
        claim = self.api.store.get(PVCS, namespace, name)
        if claim is None:
            self._reclaim_volumes_of(uid)
            return None
        meta = claim["metadata"]
        if meta.get("deletionTimestamp"):
            finalizers = meta.get("finalizers") or []
            if PVC_PROTECTION_FINALIZER in finalizers and not self._claim_in_use(namespace, name):
                self.api.update(claims, namespace, name, {**claim, "metadata": {
                    **meta, "finalizers": [f for f in finalizers if f != PVC_PROTECTION_FINALIZER]}})
            return None
        if claim.get("spec", {}).get("volumeName"):
            return None
        return self._provision(claims, claim)

    def _claim_in_use(self, namespace: str, claim: str) -> bool:
        for pod in self.api.store.iter(PODS, namespace):
            # Only scheduled pods count: the kubelet will not start a pod whose claim is being deleted.
            if not pod.get("spec", {}).get("nodeName") or pod.get("status", {}).get("phase") in ("Succeeded",
                                                                                                 "Failed"):
                continue
            if claim in _claims_of(pod):
                return True
        return False

    def _provision(self, claims: ResourceType, claim: dict[str, Any]) -> float | None:
        meta, spec = claim["metadata"], claim.get("spec", {})
        class_name = spec.get("storageClassName")
        storage_class = self.api.store.get(("storage.k8s.io", "storageclasses"), "", class_name or "")
        if storage_class is None:
            reason = (f'storageclass.storage.k8s.io "{class_name}" not found' if class_name else
                      "no persistent volumes available for this claim and no storage class is set")
            self.events.record(claim, "Warning", "ProvisioningFailed", reason,
                               component="persistentvolume-controller")
            return None
        pv_name = f"pvc-{meta['uid']}"
        path = self.state_dir / "volumes" / pv_name
        path.mkdir(parents=True, exist_ok=True)
        storage = spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")
        volumes = self.api.rt("", "v1", "persistentvolumes")
        if self.api.store.get(PVS, "", pv_name) is None:
            pv = self.api.create(volumes, None, {
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
                             "finalizers": ["kubernetes.io/pv-protection"]},
                "spec": {"capacity": {"storage": storage}, "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
                         "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy", "Delete"),
                         "storageClassName": class_name, "volumeMode": spec.get("volumeMode", "Filesystem"),
                         "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                         "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                      "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta["uid"]}},
            })
            self.api.update(volumes, None, pv_name, {**pv, "status": {"phase": "Bound"}}, subresource="status")
        annotations = {**meta.get("annotations", {}), "pv.kubernetes.io/bind-completed": "yes",
                       "pv.kubernetes.io/bound-by-controller": "yes",
                       "volume.kubernetes.io/storage-provisioner": PROVISIONER}
        bound = self.api.update(claims, meta.get("namespace"), meta["name"], {
            **claim, "metadata": {**meta, "annotations": annotations}, "spec": {**spec, "volumeName": pv_name}})
        self.api.update(claims, meta.get("namespace"), meta["name"], {**bound, "status": {
            "phase": "Bound", "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
            "capacity": {"storage": storage}}}, subresource="status")
        self.events.record(claim, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}",
                           component=PROVISIONER)
        return None

    def _reclaim_volumes_of(self, claim_uid: str) -> None:
        volumes = self.api.rt("", "v1", "persistentvolumes")
        for pv in list(self.api.store.iter(PVS)):
            spec = pv.get("spec", {})
            if not claim_uid or spec.get("claimRef", {}).get("uid") != claim_uid:
                continue
            name = pv["metadata"]["name"]
            if spec.get("persistentVolumeReclaimPolicy") == "Delete":
                path = Path(spec.get("hostPath", {}).get("path", ""))
                if path.is_relative_to(self.state_dir / "volumes"):
                    shutil.rmtree(path, ignore_errors=True)
                self.api.update(volumes, None, name, {**pv, "metadata": {**pv["metadata"], "finalizers": []}})
                if self.api.store.get(PVS, "", name) is not None:
                    self.api.delete(volumes, None, name)
            else:
                self.api.update(volumes, None, name, {**pv, "status": {"phase": "Released"}}, subresource="status")

    # -- CRDs ---------------------------------------------------------------------------------------

    def _reconcile_crd(self, name: str) -> float | None:
        crd = self.api.store.get(CRDS, "", name)
        if crd is None or not crd["metadata"].get("deletionTimestamp"):
            return None
        spec = crd.get("spec", {})
        gr = (spec.get("group", ""), spec.get("names", {}).get("plural", ""))
        rt = self._rt(gr)
        remaining = 0
        if rt is not None:
            for obj in list(self.api.store.iter(gr)):
                remaining += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    try:
                        self.api.delete(rt, obj["metadata"].get("namespace") or None, obj["metadata"]["name"])
                    except StatusError as exc:
                        if exc.code != 404:
                            raise
        if self.api.store.count(gr):
            return 1.0 if remaining else None
        finalizers = [f for f in crd["metadata"].get("finalizers") or [] if f != CRD_CLEANUP_FINALIZER]
        self.api.update(self.api.rt("apiextensions.k8s.io", "v1", "customresourcedefinitions"), None, name,
                        {**crd, "metadata": {**crd["metadata"], "finalizers": finalizers}})
        return None


def _claims_of(pod: dict[str, Any]) -> Iterable[str]:
    for volume in pod.get("spec", {}).get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            yield claim


def _is_ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp") or pod.get("status", {}).get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def template_revision(sts: dict[str, Any]) -> str:
    template = json.dumps(sts.get("spec", {}).get("template", {}), sort_keys=True, separators=(",", ":"))
    return f"{sts['metadata']['name']}-{hashlib.sha256(template.encode()).hexdigest()[:10]}"


class StatefulSetReconciler:
    """One pass of the StatefulSet controller over one StatefulSet."""

    def __init__(self, controllers: Controllers, sts: dict[str, Any]) -> None:
        self.c = controllers
        self.api = controllers.api
        self.sts = sts
        self.meta = sts["metadata"]
        self.spec = sts.get("spec", {})
        self.namespace = self.meta.get("namespace", "")
        self.pods_rt = self.api.rt("", "v1", "pods")
        self.revision = template_revision(sts)

    def owned_pods(self) -> dict[int, dict[str, Any]]:
        pods: dict[int, dict[str, Any]] = {}
        prefix = f"{self.meta['name']}-"
        for gr, namespace, name in self.c.owners.dependents.get(self.meta["uid"], ()):
            if gr != PODS or not name.startswith(prefix) or not name[len(prefix):].isdigit():
                continue
            pod = self.api.store.get(PODS, namespace, name)
            if pod is not None:
                pods[int(name[len(prefix):])] = pod
        return pods

    def run(self) -> float | None:
        replicas = self.spec.get("replicas", 1)
        ordered = self.spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        pods = self.owned_pods()
        for ordinal in range(replicas):
            pod = pods.get(ordinal)
            if pod is None:
                self._ensure_claims(ordinal)
                if ordered and not all(_is_ready(pods[i]) for i in range(ordinal) if i in pods):
                    break
                pods[ordinal] = self.api.create(self.pods_rt, self.namespace, self._pod(ordinal))
                if ordered:
                    break
            elif pod.get("status", {}).get("phase") in ("Succeeded", "Failed") and \
                    not pod["metadata"].get("deletionTimestamp"):
                self.api.delete(self.pods_rt, self.namespace, pod["metadata"]["name"])
        excess = sorted((o for o in pods if o >= replicas), reverse=True)
        for ordinal in excess:
            pod = pods[ordinal]
            if not pod["metadata"].get("deletionTimestamp"):
                self.api.delete(self.pods_rt, self.namespace, pod["metadata"]["name"])
                self._release_claims(ordinal)
            if ordered:
                break
        self._roll(pods, replicas)
        self._update_status(pods, replicas)
        return None

    def _roll(self, pods: dict[int, dict[str, Any]], replicas: int) -> None:
        strategy = self.spec.get("updateStrategy", {})
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        partition = (strategy.get("rollingUpdate") or {}).get("partition", 0) or 0
        current = {o: p for o, p in pods.items() if o < replicas}
        if len(current) < replicas or any(p["metadata"].get("deletionTimestamp") for p in current.values()):
            return
        outdated = sorted((o for o, p in current.items() if o >= partition and
                           p["metadata"].get("labels", {}).get("controller-revision-hash") != self.revision),
                          reverse=True)
        if not outdated:
            return
        # Replace one pod at a time, and only while the rest are healthy, as maxUnavailable=1 does.
        if all(_is_ready(p) for o, p in current.items() if o != outdated[0]) or not any(
                _is_ready(p) for p in current.values()):
            self.api.delete(self.pods_rt, self.namespace, current[outdated[0]]["metadata"]["name"])

    def _pod(self, ordinal: int) -> dict[str, Any]:
        template = copy.deepcopy(self.spec.get("template", {}))
        name = f"{self.meta['name']}-{ordinal}"
        labels = {**(template.get("metadata", {}).get("labels") or {}),
                  "controller-revision-hash": self.revision,
                  "statefulset.kubernetes.io/pod-name": name,
                  "apps.kubernetes.io/pod-index": str(ordinal)}
        spec = template.get("spec", {})
        spec["hostname"] = name
        if self.spec.get("serviceName"):
            spec["subdomain"] = self.spec["serviceName"]
        volumes = [v for v in spec.get("volumes") or []]
        for claim in self.spec.get("volumeClaimTemplates") or []:
            claim_name = claim["metadata"]["name"]
            volumes = [v for v in volumes if v.get("name") != claim_name]
            volumes.append({"name": claim_name,
                            "persistentVolumeClaim": {"claimName": f"{claim_name}-{self.meta['name']}-{ordinal}"}})
        if volumes:
            spec["volumes"] = volumes
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels,
                         "annotations": template.get("metadata", {}).get("annotations") or {},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                              "name": self.meta["name"], "uid": self.meta["uid"],
                                              "controller": True, "blockOwnerDeletion": True}]},
            "spec": spec,
        }

    def _ensure_claims(self, ordinal: int) -> None:
        claims_rt = self.api.rt("", "v1", "persistentvolumeclaims")
        match_labels = (self.spec.get("selector") or {}).get("matchLabels") or {}
        retention = self.spec.get("persistentVolumeClaimRetentionPolicy") or {}
        for template in self.spec.get("volumeClaimTemplates") or []:
            name = f"{template['metadata']['name']}-{self.meta['name']}-{ordinal}"
            if self.api.store.get(PVCS, self.namespace, name) is not None:
                continue
            # The claim is the template with its name and namespace set and the selector's labels added: its
            # annotations and ownerReferences (a second owner that outlives the set) come as written.
            metadata: dict[str, Any] = copy.deepcopy(template.get("metadata") or {})
            metadata.update(name=name, namespace=self.namespace,
                            labels={**(metadata.get("labels") or {}), **match_labels})
            if retention.get("whenDeleted") == "Delete":
                metadata["ownerReferences"] = [*(metadata.get("ownerReferences") or []),
                                               {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                                "name": self.meta["name"], "uid": self.meta["uid"],
                                                "controller": True, "blockOwnerDeletion": True}]
            try:
                self.api.create(claims_rt, self.namespace, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                                            "metadata": metadata,
                                                            "spec": copy.deepcopy(template.get("spec", {}))})
            except StatusError as exc:
                self.c.events.record(self.sts, "Warning", "FailedCreate",
                                     f"create Claim {name} for StatefulSet {self.meta['name']} failed error: "
                                     f"{exc.message}", component="statefulset-controller")
                if exc.code != 409:
                    raise

    def _release_claims(self, ordinal: int) -> None:
        retention = self.spec.get("persistentVolumeClaimRetentionPolicy") or {}
        if retention.get("whenScaled") != "Delete":
            return
        claims_rt = self.api.rt("", "v1", "persistentvolumeclaims")
        for template in self.spec.get("volumeClaimTemplates") or []:
            name = f"{template['metadata']['name']}-{self.meta['name']}-{ordinal}"
            if self.api.store.get(PVCS, self.namespace, name) is not None:
                self.api.delete(claims_rt, self.namespace, name)

    def _update_status(self, pods: dict[int, dict[str, Any]], replicas: int) -> None:
        existing = [p for p in pods.values()]
        ready = sum(1 for p in existing if _is_ready(p))
        updated = sum(1 for p in existing if p["metadata"].get("labels", {}).get("controller-revision-hash")
                      == self.revision)
        old_status = self.sts.get("status", {})
        current_revision = old_status.get("currentRevision") or self.revision
        if updated == len(existing) and len(existing) == replicas:
            current_revision = self.revision
        status = {
            "observedGeneration": self.meta.get("generation", 1),
            "replicas": len(existing),
            "readyReplicas": ready,
            "currentReplicas": sum(1 for p in existing if p["metadata"].get("labels", {}).get(
                "controller-revision-hash") == current_revision),
            "updatedReplicas": updated,
            "availableReplicas": ready,
            "currentRevision": current_revision,
            "updateRevision": self.revision,
            "collisionCount": 0,
        }
        if status != old_status:
            sts_rt = self.api.rt("apps", "v1", "statefulsets")
            latest = self.api.store.get(STATEFULSETS, self.namespace, self.meta["name"])
            if latest is not None:
                self.api.update(sts_rt, self.namespace, self.meta["name"], {**latest, "status": status},
                                subresource="status")





def _now() -> float:
    return time.time()


def _rfc3339_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rfc3339(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None

"""A dynamic volume provisioner for the real control plane: claims bind to directories under the state dir.

kube-controller-manager's PersistentVolume controller does the binding; it only needs someone to create
a PersistentVolume for a claim whose StorageClass names an external provisioner. It marks such a claim with
``volume.kubernetes.io/storage-provisioner: <provisioner>``, and this controller answers with a volume of the
claim's size whose ``claimRef`` points back at it, backed by ``<volumes>/pvc-<claim uid>`` (a ``hostPath``:
the node agent runs every pod on this machine, so one directory serves every node). That is what kind's
local-path provisioner does on a real node.

With reclaim policy ``Delete``, a volume released by its deleted claim is removed, directory included;
``Retain`` keeps both. Data therefore survives pod deletion and control-plane restarts, and goes exactly
when the claim does.

It talks to the API server over HTTPS like any controller, with an identity that may create and delete
PersistentVolumes and read claims and StorageClasses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any

from ..apiserver.errors import StatusError
from ..node.apiclient import ApiClient, object_path

log = logging.getLogger(__name__)

PROVISIONER = "devservers.io/local-path"
PROVISIONER_ANNOTATIONS = ("volume.kubernetes.io/storage-provisioner", "volume.beta.kubernetes.io/storage-provisioner")
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


class LocalPathProvisioner:
    """Creates a PersistentVolume per claim of its provisioner, deletes released ones (reclaim Delete)."""

    def __init__(self, client: ApiClient, *, volumes_dir: Path, provisioner: str = PROVISIONER) -> None:
        self.client = client
        self.volumes_dir = Path(volumes_dir)
        self.provisioner = provisioner
        self.claims = client.informer(object_path("persistentvolumeclaims"))
        self.volumes = client.informer(object_path("persistentvolumes"))
        self.classes = client.informer(object_path("storageclasses", group="storage.k8s.io"))
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[str] = set()

    async def start(self) -> None:
        self.volumes_dir.mkdir(parents=True, exist_ok=True)
        for informer in (self.claims, self.volumes, self.classes):
            informer.add_handler(lambda _kind, _obj: self._wake.set())
            informer.start()
        await asyncio.gather(*(i.synced.wait() for i in (self.claims, self.volumes, self.classes)))
        self._task = asyncio.create_task(self._run(), name="local-path provisioner")
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for informer in (self.claims, self.volumes, self.classes):
            await informer.stop()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.sync()
            except Exception:
                log.exception("local-path provisioner: sync failed")
                await asyncio.sleep(1)
                self._wake.set()

    async def sync(self) -> None:
        """One pass over claims and volumes: provision what is wanted, delete what is released."""
        retry = False
        for claim in self.claims.values():
            if self._wants_volume(claim):
                retry |= not await self._provision(claim)
        for volume in self.volumes.values():
            if self._released_for_deletion(volume):
                retry |= not await self._delete(volume)
        if retry:
            await asyncio.sleep(1)
            self._wake.set()

    def _wants_volume(self, claim: dict[str, Any]) -> bool:
        meta, spec = claim["metadata"], claim.get("spec", {})
        annotations = meta.get("annotations") or {}
        if spec.get("volumeName") or meta.get("deletionTimestamp"):
            return False
        if claim.get("status", {}).get("phase") not in (None, "Pending"):
            return False
        asked = any(annotations.get(key) == self.provisioner for key in PROVISIONER_ANNOTATIONS)
        return asked and self.volumes.get(None, f"pvc-{meta['uid']}") is None

    def _released_for_deletion(self, volume: dict[str, Any]) -> bool:
        meta, spec = volume["metadata"], volume.get("spec", {})
        return (
            (meta.get("annotations") or {}).get(PROVISIONED_BY) == self.provisioner
            and spec.get("persistentVolumeReclaimPolicy") == "Delete"
            and volume.get("status", {}).get("phase") in ("Released", "Failed")
            and not meta.get("deletionTimestamp")
        )

    async def _provision(self, claim: dict[str, Any]) -> bool:
        meta, spec = claim["metadata"], claim.get("spec", {})
        name = f"pvc-{meta['uid']}"
        if name in self._in_flight:
            return True
        storage_class = self.classes.get(None, spec.get("storageClassName") or "") or {}
        directory = self.volumes_dir / name
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {PROVISIONED_BY: self.provisioner}},
            "spec": {
                "capacity": {"storage": (spec.get("resources", {}).get("requests") or {}).get("storage", "1Gi")},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
                "storageClassName": spec.get("storageClassName") or "",
                "volumeMode": spec.get("volumeMode") or "Filesystem",
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
                "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"},
            },
        }
        self._in_flight.add(name)
        try:
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
            await self.client.create(object_path("persistentvolumes"), volume)
            log.info("provisioned %s for claim %s/%s", name, meta["namespace"], meta["name"])
            return True
        except StatusError as exc:
            if exc.code == 409:
                return True
            log.warning("could not provision a volume for %s/%s: %s", meta["namespace"], meta["name"], exc.message)
            return False
        finally:
            self._in_flight.discard(name)

    async def _delete(self, volume: dict[str, Any]) -> bool:
        name = volume["metadata"]["name"]
        path = Path((volume.get("spec", {}).get("hostPath") or {}).get("path") or self.volumes_dir / name)
        if self.volumes_dir.resolve() in path.resolve().parents:
            await asyncio.to_thread(shutil.rmtree, path, True)
        try:
            await self.client.delete(object_path("persistentvolumes", None, name))
        except StatusError as exc:
            if exc.code != 404:
                log.warning("could not delete released volume %s: %s", name, exc.message)
                return False
        log.info("deleted released volume %s", name)
        return True

"""What a DevServer and its pods say, read once for every part: expiry, ready ranks, a pod's rank and readiness.

Why: each of these was answered in several places, and the answers had started to disagree. The expiry was
computed by the lifecycle rules (capped by the flavor), again by ``devctl``'s renderer (not checking whether the
operator's ``status.expiresAt`` was current), by the magics (checking it) and by the dashboard (not computing it
at all); a pod's rank by the client (label only) and the status (label, else the name's ordinal); a pod's
readiness by launch (phase Running too) and the status (the Ready condition), and the client's ``describe``
counted a pod being deleted as ready. Front ends now only format what these functions return.

Pure and light: the standard library, ``contract`` and ``durations`` only (no pydantic), so ``devctl list``'s
fast path renders the manifests the server sent with the same functions the models' users call. A function
that takes a ``server`` accepts a ``DevServer`` model or its manifest (the CRD's spelling, as the server sends
it); a model is dumped to its manifest first, so both are read by one implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from .contract import DEFAULT_WORLD_SIZE, DESIRED_STATE_ANNOTATION, MODES, RANK_LABEL
from .durations import parse_duration

__all__ = [
    "deadline",
    "desired_state",
    "expires_at",
    "lifetime_cap",
    "pod_rank",
    "pod_ready",
    "ready_text",
    "wanted_ranks",
    "world_size",
]


# -- pods ------------------------------------------------------------------------------------------------

def pod_rank(pod: Mapping[str, Any]) -> int | None:
    """A pod's rank: its ``apps.kubernetes.io/pod-index`` label, else the ordinal suffix of its name.

    The label is set by the StatefulSet controller from Kubernetes 1.28; before it, the name ``<server>-<rank>``
    is the only place the ordinal is written.
    """
    metadata = pod.get("metadata") or {}
    for candidate in ((metadata.get("labels") or {}).get(RANK_LABEL), str(metadata.get("name", "")).rpartition("-")[2]):
        if candidate is not None and str(candidate).isascii() and str(candidate).isdigit():
            return int(candidate)
    return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Whether a pod can do work now: its ``Ready`` condition is True and it is not being deleted.

    Kubernetes' own rule (``IsPodReady``) reads only the condition: the kubelet turns it False when the pod
    stops running (reason PodCompleted or PodFailed), and the node lifecycle controller when the pod's node
    stops reporting, while the phase may still say Running. A pod being deleted is not ready either, as for
    the EndpointSlice controller (``ready`` is Ready and not terminating): its container is being stopped.
    """
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_running(pod: Mapping[str, Any]) -> bool:
    """Whether a pod's container runs now and will go on running: phase Running and not being deleted.

    A different question from ``pod_ready``: a running pod whose probe fails can still be exec'd into (to
    find out why), and it still costs money. A pod being deleted is refused because its container is being
    stopped under whatever would start in it.
    """
    return (pod.get("status") or {}).get("phase") == "Running" and not (pod.get("metadata") or {}).get(
        "deletionTimestamp")


# -- expiry ----------------------------------------------------------------------------------------------

def lifetime_cap(*, created_at: datetime, max_time_to_live: str | None) -> datetime | None:
    """Creation + the flavor's ``maxTimeToLive``: the latest any deadline may be; None without a maximum."""
    return created_at + parse_duration(max_time_to_live) if max_time_to_live is not None else None


def deadline(*, created_at: datetime, expiration_time: datetime | None, time_to_live: str | None,
             max_time_to_live: str | None) -> datetime | None:
    """When a DevServer is to be deleted, or None if never: the lifecycle's rule.

    The earlier of ``expirationTime`` and ``created_at + timeToLive``, capped at ``created_at`` + the flavor's
    ``maxTimeToLive``; a DevServer that sets neither lives exactly the flavor's maximum.
    """
    candidates = [expiration_time] if expiration_time is not None else []
    if time_to_live is not None:
        candidates.append(created_at + parse_duration(time_to_live))
    cap = lifetime_cap(created_at=created_at, max_time_to_live=max_time_to_live)
    if cap is not None:
        candidates.append(cap)
    return min(candidates) if candidates else None


def expires_at(server: Any, *, max_time_to_live: str | None = None) -> datetime | None:
    """When the DevServer will be deleted, as every front end shows it.

    The operator's ``status.expiresAt`` while it is current; until the operator has seen the latest spec
    (no status, or ``observedGeneration`` behind ``generation``, e.g. right after ``extend``), ``deadline``
    over the spec, capped by ``max_time_to_live`` (the flavor's ``maxTimeToLive``) when the caller knows it.

    Args:
        server: a ``DevServer`` or its manifest.
        max_time_to_live: the flavor's ``maxTimeToLive``, if known.
    """
    manifest = _manifest(server)
    metadata, status = _section(manifest, "metadata"), _section(manifest, "status")
    generation, observed = metadata.get("generation"), status.get("observedGeneration")
    recorded = _moment(status.get("expiresAt"))
    if recorded is not None and (observed is None or generation is None or observed >= generation):
        return recorded
    created = _moment(metadata.get("creationTimestamp"))
    lifecycle = _section(manifest, "spec", "lifecycle")
    expiration = _moment(lifecycle.get("expirationTime"))
    if created is None:  # not stored yet: only an absolute deadline is known
        return expiration
    return deadline(created_at=created, expiration_time=expiration, time_to_live=lifecycle.get("timeToLive"),
                    max_time_to_live=max_time_to_live)


# -- stop and start --------------------------------------------------------------------------------------

def desired_state(annotations: Mapping[str, str]) -> Literal["Stopped", "Running"] | None:
    """What ``devservers.io/desired-state`` asks for, read as the operator reads it (case and spaces aside);
    None when it is absent or says something else (the operator then runs the server)."""
    value = annotations.get(DESIRED_STATE_ANNOTATION, "").strip().lower()
    return "Stopped" if value == "stopped" else "Running" if value == "running" else None


# -- ranks -----------------------------------------------------------------------------------------------

def world_size(server: Any) -> int:
    """How many pods the DevServer has when running: ``worldSize`` in distributed mode, else 1."""
    spec = _section(_manifest(server), "spec")
    if spec.get("mode", MODES[0]) != "distributed":
        return 1
    return int(_section(spec, "distributed").get("worldSize", DEFAULT_WORLD_SIZE))


def wanted_ranks(server: Any) -> int:
    """The pods that should be ready: the operator's ``status.replicas`` (0 while stopped), else the world size."""
    manifest = _manifest(server)
    replicas = _section(manifest, "status").get("replicas")
    return int(replicas) if replicas is not None else world_size(manifest)


def ready_text(server: Any) -> str:
    """``ready/wanted`` pods, e.g. ``1/2``."""
    manifest = _manifest(server)
    return f"{_section(manifest, 'status').get('readyReplicas') or 0}/{wanted_ranks(manifest)}"


# -- reading ---------------------------------------------------------------------------------------------

def _manifest(server: Any) -> Mapping[str, Any]:
    if isinstance(server, Mapping):
        return server
    # A DevServer model (not imported: that would import pydantic): its manifest, in the server's spelling.
    dumped: Mapping[str, Any] = server.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def _section(manifest: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    for key in keys:
        manifest = manifest.get(key) or {}
    return manifest


def _moment(value: Any) -> datetime | None:
    """A timestamp of a manifest (RFC 3339); one without a zone is UTC, as the API server writes them."""
    if not value:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

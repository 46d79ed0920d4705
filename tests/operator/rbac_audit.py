"""What the operator's RBAC grants, against what the operator did: read from the API server's audit log.

A permission is ``(apiGroup, resource[/subresource], verb)``, ``""`` for the core group. ``granted``
expands the ClusterRoles and Roles of ``operator/deploy`` that are bound to the operator's ServiceAccount;
``used`` reads the audit log (JSON lines, Metadata level) for requests of that user; ``problems`` says, one
sentence each, which grants were never used and which requests were refused (403).

One thing the audit log does not show: since Kubernetes 1.35 (feature gate
``AuthorizePodWebsocketUpgradeCreatePermission``, beta and on by default; ``pkg/registry/core/pod/rest/
subresources.go``) an exec, attach or port-forward over a WebSocket is a GET that RBAC checks as ``get``
and the pod registry then checks again as ``create``. The audit event records only ``get``, so a ``get`` of
those subresources counts as a use of ``create`` too (``IMPLIED``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Permission = tuple[str, str, str]
"""(apiGroup, resource or resource/subresource, verb)."""

_STREAMS = ("pods/exec", "pods/attach", "pods/portforward")
IMPLIED: dict[Permission, set[Permission]] = {("", stream, "get"): {("", stream, "create")} for stream in _STREAMS}


def granted(documents: Iterable[dict[str, Any]], *, namespace: str, service_account: str) -> set[Permission]:
    """Every permission the (Cluster)Roles bound to the ServiceAccount grant, from manifests."""
    documents = [doc for doc in documents if doc]
    roles: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in documents:
        if doc.get("kind") in ("ClusterRole", "Role"):
            roles[(doc["kind"], doc["metadata"]["name"])] = doc
    result: set[Permission] = set()
    for doc in documents:
        if doc.get("kind") not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        bound = any(subject.get("kind") == "ServiceAccount" and subject.get("name") == service_account
                    and subject.get("namespace", doc["metadata"].get("namespace")) == namespace
                    for subject in doc.get("subjects") or [])
        if not bound:
            continue
        role = roles.get((doc["roleRef"]["kind"], doc["roleRef"]["name"]))
        if role is None:
            raise ValueError(f"{doc['kind']} {doc['metadata']['name']} binds {doc['roleRef']['kind']} "
                             f"{doc['roleRef']['name']}, which operator/deploy does not define")
        for rule in role.get("rules") or []:
            if rule.get("nonResourceURLs") or rule.get("resourceNames"):
                raise ValueError(f"{role['metadata']['name']}: rules with nonResourceURLs or resourceNames "
                                 "are not checked here; extend tests/operator/rbac_audit.py first")
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    for verb in rule.get("verbs") or []:
                        result.add((group, resource, verb))
    return result


@dataclass
class Usage:
    """What one user's requests did: permissions used (answered, refused or not) and the refusals."""

    used: set[Permission] = field(default_factory=set)
    forbidden: list[str] = field(default_factory=list)
    requests: int = 0


def used(lines: Iterable[str], *, user: str) -> Usage:
    """Read audit events (one JSON object a line) for ``user``'s resource requests."""
    usage = Usage()
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        if (event.get("user") or {}).get("username") != user:
            continue
        ref = event.get("objectRef")
        if not ref or not ref.get("resource"):
            continue  # discovery and other non-resource URLs: every authenticated user may read them
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        permission = (ref.get("apiGroup") or "", resource, str(event.get("verb")))
        if event.get("stage") == "ResponseComplete" or event.get("stage") == "ResponseStarted":
            usage.requests += 1
        usage.used.add(permission)
        usage.used |= IMPLIED.get(permission, set())
        # Refused by RBAC, not by admission: a create in a namespace being deleted is a 403 as well, which the
        # authorizer allowed (the operator meets those whenever a namespace goes with its DevServers).
        decision = (event.get("annotations") or {}).get("authorization.k8s.io/decision")
        if (event.get("responseStatus") or {}).get("code") == 403 and decision != "allow":
            where = f" in namespace {ref['namespace']}" if ref.get("namespace") else ""
            usage.forbidden.append(f"{event.get('verb')} {resource} {ref.get('name') or ''}{where}: "
                                   f"{(event.get('responseStatus') or {}).get('message') or 'Forbidden'}")
    return usage


def problems(grants: set[Permission], usage: Usage) -> list[str]:
    """One sentence per grant the operator never used, and per request the API server refused it."""
    found = [f"granted but never used: {verb} {group + '/' if group else ''}{resource}"
             for group, resource, verb in sorted(grants - usage.used)]
    found += [f"refused (403): {refusal}" for refusal in usage.forbidden]
    return found


def read_deploy(path: Path) -> list[dict[str, Any]]:
    """The manifests of one YAML file (several documents)."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]

"""HTTP front of the emulator: Kubernetes REST paths, content negotiation, watches and authentication.

Everything here is about the wire, none of it about semantics (``api.py``): URL shapes (including the
legacy ``/watch/`` prefix and namespace subresources), bearer-token authentication, patch content types,
``dryRun``/``fieldValidation`` parameters, ``Warning`` headers, the ``as=Table`` rendering that ``kubectl
get`` asks for, chunked watch streams with bookmarks and timeouts, and the pod subresources proxied to the
node's kubelet API (``exec``, ``attach``, ``portforward``, ``log``: ``kubelet_proxy.py``).

Request bodies may be protobuf (``application/vnd.kubernetes.protobuf``, what kubectl's ``create ...`` and
``auth whoami`` send) for built-in kinds: ``protobuf.py`` turns them into JSON documents. Answers are always
JSON, even to clients that prefer protobuf: a deliberate difference from a real server, which clients accept
because they decode by the answer's Content-Type (see ``protobuf.py``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from . import authorization, discovery, errors, kubelet_proxy, openapi, protobuf, tables
from .api import ClusterAPI, now_rfc3339
from .errors import StatusError
from .faults import FaultInjector
from .resources import ResourceType

if TYPE_CHECKING:
    import ssl

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024
# The real server ends watches after --min-request-timeout (1800 s) times a random factor in [1, 2).
DEFAULT_WATCH_SECONDS = 1800
BOOKMARK_INTERVAL = 10.0
JSON = "application/json"
User = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
USER = web.RequestKey("user", dict)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GO_INTEGER = re.compile(r"[+-]?[0-9]+")


class RequestCounter:
    """Counts requests by verb and resource so benchmarks can report API calls per operation.

    ``by_namespace`` counts them per namespace as well, so a test can tell which object a client keeps
    asking about (a controller looping on one object) when each object lives in a namespace of its own.
    The node agent's own requests (pod status, leases, events, its watches) are counted apart, in
    ``node_counts``: they are the cluster's cost, not its clients'.
    """

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.node_counts: collections.Counter[str] = collections.Counter()
        self.by_namespace: collections.Counter[str] = collections.Counter()

    def add(self, verb: str, resource: str, namespace: str | None = None, *, node: bool = False) -> None:
        if node:
            self.node_counts[f"{verb} {resource}"] += 1
            self.node_counts["total"] += 1
            return
        self.counts[f"{verb} {resource}"] += 1
        self.counts["total"] += 1
        if namespace:
            self.by_namespace[namespace] += 1

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


class ApiServer:
    def __init__(self, api: ClusterAPI, *, tokens: dict[str, User],
                 kubelet_client_ssl: ssl.SSLContext | None = None) -> None:
        self.api = api
        self.tokens = tokens
        # The kubelet client: what --kubelet-client-certificate and --kubelet-certificate-authority configure.
        self.kubelet_proxy = kubelet_proxy.KubeletProxy(kubelet_client_ssl)
        self.requests = RequestCounter()
        self.faults = FaultInjector()
        self.server_url = ""
        self._shutting_down = asyncio.Event()
        self._openapi_cache = openapi.OpenAPIV3Cache(api.registry)
        self.app = web.Application(client_max_size=MAX_BODY_BYTES + 1, middlewares=[self._middleware])
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    def stop_watches(self) -> None:
        self._shutting_down.set()
        self.api.store.close_all_watchers()

    # -- middleware: auth, errors, counting --------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if not authorization.is_public(request.path):
                request[USER] = self._authenticate(request)
            return await handler(request)
        except StatusError as exc:
            return _status_response(exc)
        except web.HTTPRequestEntityTooLarge:
            return _status_response(errors.request_entity_too_large(MAX_BODY_BYTES))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # the server must answer, never crash, whatever a request contains
            log.exception("internal error serving %s %s", request.method, request.path)
            return _status_response(StatusError(500, "InternalError", f"Internal error occurred: {exc}"))

    def _authenticate(self, request: web.Request) -> User:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            # No credentials: anonymous, which may read only the public paths (see authorization.py).
            attributes = authorization.request_attributes(request.method, request.path, request.query)
            raise authorization.forbidden(attributes)
        user = self.tokens.get(token.strip())
        if user is None:
            raise errors.unauthorized()
        return user

    # -- routing -----------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3",
                                    "/readyz", "/version"]})
        head = parts[0]
        if head in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if head == "version":
            return _json(discovery.version_info())
        if head == "openapi":
            return self._openapi(request, parts[1:])
        if head == "debug" and parts[1:] == ["localcluster", "requests"]:
            return _json(self.requests.snapshot())
        if head == "api":
            if len(parts) == 1:
                return self._discovery_root(request, legacy=True)
            return await self._resource_request(request, "", parts[1], parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return self._discovery_root(request, legacy=False)
            group = parts[1]
            versions = self.api.registry.groups().get(group)
            if not versions:
                return _page_not_found()
            if len(parts) == 2:
                return _json(discovery.api_group(group, versions))
            return await self._resource_request(request, group, parts[2], parts[3:])
        return _page_not_found()

    def _discovery_root(self, request: web.Request, *, legacy: bool) -> web.Response:
        accept = request.headers.get("Accept", "")
        profile = discovery.negotiate_discovery(accept)
        if profile != "legacy":
            body = discovery.aggregated_discovery(self.api.registry, legacy=legacy, profile=profile)
            return _json(body, content_type=discovery.aggregated_content_type(profile))
        if legacy:
            return _json(discovery.api_versions(self.server_url))
        return _json(discovery.api_group_list(self.api.registry))

    def _openapi(self, request: web.Request, rest: list[str]) -> web.Response:
        if rest == ["v2"]:
            if "protobuf" in request.headers.get("Accept", ""):
                return web.Response(body=openapi.openapi_v2_protobuf(),
                                    headers={"Content-Type": openapi.OPENAPI_V2_PROTOBUF})
            raise StatusError(404, "NotFound", "the local cluster serves /openapi/v2 only as protobuf; use /openapi/v3")
        if rest == ["v3"]:
            return web.Response(body=self._openapi_cache.index(), headers={"Content-Type": JSON})
        if rest and rest[0] == "v3":
            path = "/".join(rest[1:])
            if path == "api/v1":
                group, version = "", "v1"
            elif path.startswith("apis/") and path.count("/") == 2:
                _, group, version = path.split("/")
            else:
                raise StatusError(404, "NotFound", "the server could not find the requested resource")
            entry = self._openapi_cache.document(group, version)
            if entry is None:
                raise StatusError(404, "NotFound", "the server could not find the requested resource")
            return web.Response(body=entry[0], headers={"Content-Type": JSON, "Etag": f'"{entry[1]}"'})
        raise StatusError(404, "NotFound", "the server could not find the requested resource")

    async def _resource_request(self, request: web.Request, group: str, version: str,
                                rest: list[str]) -> web.StreamResponse:
        if group == "" and version != "v1":
            raise StatusError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            if not any(v == version for v in self.api.registry.groups().get(group, [])):
                raise StatusError(404, "NotFound", "the server could not find the requested resource")
            return _json(discovery.api_resource_list(self.api.registry, group, version))
        watch_prefix = rest[0] == "watch"
        if watch_prefix:
            rest = rest[1:]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and not self._is_namespace_subresource(group, version, rest):
            namespace, rest = rest[1], rest[2:]
        plural = rest[0] if rest else ""
        name = rest[1] if len(rest) > 1 else None
        subresource = "/".join(rest[2:]) if len(rest) > 2 else None
        rt = self.api.registry.get(group, version, plural)
        if rt is None:
            raise StatusError(404, "NotFound", "the server could not find the requested resource")
        if namespace is not None and not rt.namespaced:
            raise StatusError(404, "NotFound", "the server could not find the requested resource")
        verb = self._verb(request, name, subresource, watch_prefix)
        self.requests.add(verb, rt.plural + (f"/{subresource}" if subresource else ""), namespace,
                          node=request[USER].get("username", "").startswith("system:node:"))
        if rt.namespaced and namespace is None and name is not None:
            raise StatusError(404, "NotFound", "the server could not find the requested resource")
        streaming = subresource in ("exec", "attach", "log", "portforward")
        if self.faults.active and not streaming:
            if self.faults.settings.latency:
                await asyncio.sleep(self.faults.settings.latency)
            fault = self.faults.fault_for(verb, rt.qualified_plural(), name)
            if fault is not None:
                raise fault
        if subresource:
            return await self._subresource(request, rt, namespace, name or "", subresource)
        return await self._verb_handler(request, verb, rt, namespace, name)

    def _is_namespace_subresource(self, group: str, version: str, rest: list[str]) -> bool:
        return group == "" and len(rest) == 3 and rest[2] in ("status", "finalize") \
            and self.api.registry.get("", version, rest[2]) is None

    def _verb(self, request: web.Request, name: str | None, subresource: str | None, watch_prefix: bool) -> str:
        method = request.method
        if method == "GET":
            if watch_prefix or request.query.get("watch") in ("true", "1"):
                return "watch"
            return "get" if name else "list"
        if method == "POST":
            if name and not subresource:
                raise errors.method_not_allowed()
            return "create"
        if method == "PUT":
            return "update"
        if method == "PATCH":
            return "patch"
        if method == "DELETE":
            return "delete" if name else "deletecollection"
        raise errors.method_not_allowed()

    async def _verb_handler(self, request: web.Request, verb: str, rt: ResourceType, namespace: str | None,
                            name: str | None) -> web.StreamResponse:
        if verb not in rt.verbs and not (verb == "watch" and "watch" in rt.verbs):
            raise errors.method_not_allowed()
        query = request.query
        user = request[USER]
        if verb == "get":
            assert name is not None
            return self._render(request, rt, self.api.get(rt, namespace, name))
        if verb == "list":
            # The real server does not validate limit: zero or negative means "no limit".
            limit = max(0, _int_param(query, "limit", 0, allow_negative=True))
            if query.get("resourceVersion"):
                self.api.parse_resource_version(query["resourceVersion"])
            listed = self.api.list(rt, namespace, label_selector=query.get("labelSelector", ""),
                                   field_selector=query.get("fieldSelector", ""), limit=limit,
                                   continue_token=query.get("continue", ""))
            return self._render(request, rt, listed, is_list=True)
        if verb == "watch":
            return await self._watch(request, rt, namespace, name)
        warnings: list[str] = []
        dry_run = _dry_run(query)
        validation = query.get("fieldValidation", "Warn")
        if verb == "create":
            body = await _read_body(request, rt)
            obj = self.api.create(rt, namespace, body, dry_run=dry_run, field_validation=validation,
                                  warnings=warnings, user=user)
            return self._render(request, rt, obj, status=201, warnings=warnings)
        assert verb in ("update", "patch", "delete", "deletecollection")
        if verb == "update":
            assert name is not None
            body = await _read_body(request, rt)
            obj = self.api.update(rt, namespace, name, body, dry_run=dry_run, field_validation=validation,
                                  warnings=warnings, user=user)
            return self._render(request, rt, obj, warnings=warnings)
        if verb == "patch":
            assert name is not None
            existed = self.api.store.get(rt.group_resource, namespace or "", name) is not None
            obj = await self._patch(request, rt, namespace, name, None, warnings)
            return self._render(request, rt, obj, warnings=warnings, status=200 if existed else 201)
        options = await _delete_options(request)
        if verb == "delete":
            assert name is not None
            answer, _ = self.api.delete(rt, namespace, name, options=options, dry_run=dry_run, user=user)
            return _json(answer)
        deleted = self.api.delete_collection(rt, namespace, label_selector=query.get("labelSelector", ""),
                                             field_selector=query.get("fieldSelector", ""), options=options,
                                             dry_run=dry_run, user=user)
        return _json(deleted)

    async def _patch(self, request: web.Request, rt: ResourceType, namespace: str | None, name: str,
                     subresource: str | None, warnings: list[str]) -> dict[str, Any]:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        raw = await request.read()
        if len(raw) > MAX_BODY_BYTES:
            raise errors.request_entity_too_large(MAX_BODY_BYTES)
        if content_type not in ("application/merge-patch+json", "application/json-patch+json",
                                "application/strategic-merge-patch+json", "application/apply-patch+yaml",
                                "application/apply-patch+json"):
            raise errors.unsupported_media_type(content_type)
        body = _parse(raw, yaml_allowed=content_type == "application/apply-patch+yaml")
        query = request.query
        return self.api.patch(rt, namespace, name, content_type, body, subresource=subresource,
                              dry_run=_dry_run(query), field_validation=query.get("fieldValidation", "Warn"),
                              field_manager=query.get("fieldManager", ""), force=query.get("force") == "true",
                              warnings=warnings, user=request[USER])

    # -- subresources ------------------------------------------------------------------------------

    async def _subresource(self, request: web.Request, rt: ResourceType, namespace: str | None, name: str,
                           subresource: str) -> web.StreamResponse:
        if subresource not in rt.subresources:
            raise StatusError(404, "NotFound", "the server could not find the requested resource")
        user = request[USER]
        warnings: list[str] = []
        if subresource == "status":
            if request.method == "GET":
                return self._render(request, rt, self.api.get(rt, namespace, name))
            if request.method == "PUT":
                body = await _read_body(request, rt)
                obj = self.api.update(rt, namespace, name, body, subresource="status", dry_run=_dry_run(request.query),
                                      field_validation=request.query.get("fieldValidation", "Warn"),
                                      warnings=warnings, user=user)
                return self._render(request, rt, obj, warnings=warnings)
            if request.method == "PATCH":
                obj = await self._patch(request, rt, namespace, name, "status", warnings)
                return self._render(request, rt, obj, warnings=warnings)
            raise errors.method_not_allowed()
        if subresource == "scale":
            if request.method == "GET":
                return _json(self.api.get_scale(rt, namespace, name))
            if request.method == "PUT":
                body = await _read_body(request, kind=("autoscaling/v1", "Scale"))
                replicas = (body.get("spec") or {}).get("replicas") if isinstance(body, dict) else None
                return _json(self.api.update_scale(rt, namespace, name, replicas, user=user))
            if request.method == "PATCH":
                scale = self.api.get_scale(rt, namespace, name)
                content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
                patch = _parse(await request.read(), yaml_allowed=content_type.endswith("yaml"))
                from . import patching

                try:
                    if content_type == "application/json-patch+json":
                        patched = patching.apply_json_patch(scale, patch)
                    else:
                        patched = patching.apply_merge_patch(scale, patch)
                except patching.PatchError as exc:
                    raise errors.bad_request(str(exc)) from exc
                replicas = (patched.get("spec") or {}).get("replicas")
                return _json(self.api.update_scale(rt, namespace, name, replicas, user=user))
            raise errors.method_not_allowed()
        if rt.group_resource == ("", "pods"):
            return await self._pod_subresource(request, rt, namespace or "", name, subresource)
        if rt.group_resource == ("", "namespaces") and subresource == "finalize" and request.method == "PUT":
            body = await _read_body(request, rt)
            ns = self.api.get(rt, None, name)
            ns = {**ns, "spec": {**ns.get("spec", {}), "finalizers": (body.get("spec") or {}).get("finalizers", [])}}
            return _json(self.api.update(rt, None, name, ns, user=user))
        if rt.group_resource == ("", "serviceaccounts") and subresource == "token" and request.method == "POST":
            body = await _read_body(request, kind=("authentication.k8s.io/v1", "TokenRequest"))
            return _json(self._token_request(namespace or "", name, body), status=201)
        raise errors.method_not_allowed()

    async def _pod_subresource(self, request: web.Request, rt: ResourceType, namespace: str, name: str,
                               subresource: str) -> web.StreamResponse:
        pod = self.api.get(rt, namespace, name)
        if subresource == "binding" and request.method == "POST":
            body = await _read_body(request, kind=("v1", "Binding"))
            node = ((body.get("target") or {}).get("name")) if isinstance(body, dict) else None
            if not node:
                raise errors.invalid("Binding", name, [errors.cause("target.name", "Required value",
                                                                    "FieldValueRequired")])
            if pod.get("spec", {}).get("nodeName"):
                raise errors.conflict("pods", name, "", f"pod {name} is already assigned to node "
                                                        f"\"{pod['spec']['nodeName']}\"")
            self.api.update(rt, namespace, name, {**pod, "spec": {**pod["spec"], "nodeName": node}})
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}, status=201)
        if subresource == "eviction" and request.method == "POST":
            body = await _read_body(request, kind=("policy/v1", "Eviction"))
            return _json(self._evict(rt, pod, body if isinstance(body, dict) else {}, request[USER]), status=201)
        if subresource in ("exec", "attach", "portforward") and request.method in ("GET", "POST"):
            # The location first: it checks the container before the node (strategy.go streamLocation).
            path = kubelet_proxy.stream_path(pod, subresource, request.query)
            location = self._kubelet_location(pod, name)
            return await self.kubelet_proxy.upgrade(request, location, path)
        if subresource == "log" and request.method == "GET":
            from ..node.pod_logs import parse_log_query

            options = parse_log_query(request.query, pod_name=name)
            container = kubelet_proxy.validate_container(pod, request.query.get("container"))
            if not pod.get("spec", {}).get("nodeName"):
                # LogLocation gives no location for a pod without a node: 204 No Content.
                return web.Response(status=204)
            location = self._kubelet_location(pod, name)
            return await self.kubelet_proxy.logs(request, location, kubelet_proxy.log_path(pod, options, container),
                                                 name)
        raise errors.method_not_allowed()

    def _evict(self, rt: ResourceType, pod: dict[str, Any], body: dict[str, Any],
               user: dict[str, Any]) -> dict[str, Any]:
        """The eviction subresource as kube-apiserver's EvictionREST: a pod already leaving, or not running
        yet, goes at once; otherwise its PodDisruptionBudget (at most one) must allow one more disruption.
        The pod is marked with a DisruptionTarget condition, then deleted with the request's deleteOptions.

        There is no disruption controller here, so what a budget allows is computed from the pods now,
        where the real server reads the ``disruptionsAllowed`` that controller wrote.
        """
        meta = pod["metadata"]
        name, namespace = meta["name"], meta.get("namespace")
        asked = (body.get("metadata") or {}).get("name")
        if asked and asked != name:
            raise errors.bad_request("name in URL does not match name in Eviction object")
        phase = (pod.get("status") or {}).get("phase")
        if not meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed", "Pending"):
            self._check_disruption_budget(pod)
        if not meta.get("deletionTimestamp"):
            status = dict(pod.get("status") or {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
            conditions.append({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                               "message": "Eviction API: evicting", "lastTransitionTime": now_rfc3339(),
                               "lastProbeTime": None})
            self.api.update(rt, namespace, name, {**pod, "status": {**status, "conditions": conditions}},
                            subresource="status", user=user)
        options = body.get("deleteOptions") or {}
        self.api.delete(rt, namespace, name, options=options if isinstance(options, dict) else {}, user=user)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

    def _check_disruption_budget(self, pod: dict[str, Any]) -> None:
        from .selectors import label_selector_from_dict

        namespace = pod["metadata"].get("namespace")
        labels = pod["metadata"].get("labels") or {}
        budgets_rt = self.api.rt("policy", "v1", "poddisruptionbudgets")
        budgets = [b for b in self.api.list(budgets_rt, namespace)["items"]
                   if label_selector_from_dict((b.get("spec") or {}).get("selector")).matches(labels)]
        if not budgets:
            return
        if len(budgets) > 1:
            raise StatusError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the "
                                                    "eviction subresource does not support.")
        budget = budgets[0]
        spec = budget.get("spec") or {}
        selector = label_selector_from_dict(spec.get("selector"))
        pods = [p for p in self.api.list(self.api.rt("", "v1", "pods"), namespace)["items"]
                if selector.matches(p["metadata"].get("labels")) and not p["metadata"].get("deletionTimestamp")]
        healthy = sum(1 for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                             for c in (p.get("status") or {}).get("conditions") or []))

        def amount(value: Any) -> int:
            if isinstance(value, str) and value.endswith("%"):
                return -(-len(pods) * int(value[:-1]) // 100)  # rounded up, as the disruption controller
            return int(value)

        if spec.get("minAvailable") is not None:
            desired = amount(spec["minAvailable"])
        elif spec.get("maxUnavailable") is not None:
            desired = max(0, len(pods) - amount(spec["maxUnavailable"]))
        else:
            desired = len(pods)
        if healthy - desired <= 0:
            budget_name = budget["metadata"]["name"]
            raise StatusError(
                429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
                details={"causes": [{"reason": "DisruptionBudget",
                                     "message": f"The disruption budget {budget_name} needs {desired} healthy "
                                                f"pods and has {healthy} currently"}]})

    def _kubelet_location(self, pod: dict[str, Any], name: str) -> kubelet_proxy.KubeletLocation:
        node_name = pod.get("spec", {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        node = self.api.get(self.api.rt("", "v1", "nodes"), None, node_name)
        return kubelet_proxy.kubelet_location(node)

    def _token_request(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        import secrets as token_secrets

        account = self.api.get(self.api.rt("", "v1", "serviceaccounts"), namespace, name)
        token = token_secrets.token_urlsafe(32)
        # What a real bound token authenticates as (kubectl auth whoami shows it): the account's uid and
        # the token's own ID (its JWT "jti") as extra.
        self.tokens[token] = {"username": f"system:serviceaccount:{namespace}:{name}",
                              "uid": account.get("metadata", {}).get("uid", ""),
                              "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                                         "system:authenticated"],
                              "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={uuid.uuid4()}"]}}
        spec = (body.get("spec") if isinstance(body, dict) else None) or {}
        seconds = int(spec.get("expirationSeconds") or 3600)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace, "creationTimestamp": now_rfc3339()},
                "spec": {**spec, "expirationSeconds": seconds}, "status": {"token": token,
                                                                          "expirationTimestamp": expires}}

    # -- watch -------------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, rt: ResourceType, namespace: str | None,
                     name: str | None) -> web.StreamResponse:
        query = request.query
        field_selector = query.get("fieldSelector", "")
        if name:
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={name}"]))
        timeout = _int_param(query, "timeoutSeconds", 0) or DEFAULT_WATCH_SECONDS * (1 + random.random())
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        initial_events = query.get("sendInitialEvents") == "true"
        response = web.StreamResponse(headers={"Content-Type": JSON, "Cache-Control": "no-cache, private"})
        try:
            watcher, initial = self.api.watch(rt, namespace, resource_version=query.get("resourceVersion", ""),
                                              label_selector=query.get("labelSelector", ""),
                                              field_selector=field_selector, send_initial_events=initial_events)
        except StatusError as exc:
            if exc.code != 410:
                raise
            await response.prepare(request)
            await response.write(_event_line("ERROR", exc.to_status()))
            return response
        await response.prepare(request)
        deadline = time.monotonic() + timeout
        lifetime = self.faults.watch_lifetime()
        if lifetime is not None:
            deadline = min(deadline, time.monotonic() + lifetime)
        as_version = rt.version != rt.storage_version
        try:
            for event_type, obj in initial:
                await response.write(_event_line(event_type, obj))
            if initial_events:
                await response.write(_event_line("BOOKMARK", self._bookmark(rt, initial_events_end=True)))
            while not self._shutting_down.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(min(remaining, BOOKMARK_INTERVAL) if bookmarks else remaining):
                        item = await watcher.queue.get()
                except TimeoutError:
                    if bookmarks and time.monotonic() < deadline:
                        await response.write(_event_line("BOOKMARK", self._bookmark(rt)))
                    continue
                if item is None:
                    break
                event_type, obj = item
                if as_version:
                    obj = {**obj, "apiVersion": rt.api_version}
                await response.write(_event_line(event_type, obj))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.api.store.unwatch(watcher)
        return response

    def _bookmark(self, rt: ResourceType, *, initial_events_end: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(self.api.store.revision)}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}

    # -- rendering ---------------------------------------------------------------------------------

    def _render(self, request: web.Request, rt: ResourceType, obj: dict[str, Any], *, is_list: bool = False,
                status: int = 200, warnings: list[str] | None = None) -> web.Response:
        accept = request.headers.get("Accept", "")
        headers = {}
        if warnings:
            # Control characters (a field named "a\x03" in a warning) would make aiohttp drop the connection;
            # Go's server writes \r and \n as spaces, and here every control character is.
            headers["Warning"] = _CONTROL.sub(" ", ", ".join(f'299 - "{w.replace(chr(34), chr(92) + chr(34))}"'
                                                             for w in warnings))
        if "as=Table" in accept:
            items = obj["items"] if is_list else [obj]
            table = tables.table_for(items, kind=rt.kind, group=rt.group, printer_columns=rt.printer_columns,
                                     include_object=request.query.get("includeObject", "Metadata"),
                                     list_meta=obj.get("metadata") if is_list else None)
            return _json(table, status=status, headers=headers)
        if "as=PartialObjectMetadata" in accept:
            def partial(o: dict[str, Any]) -> dict[str, Any]:
                return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}

            if is_list:
                obj = {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                       "metadata": obj["metadata"], "items": [partial(o) for o in obj["items"]]}
            else:
                obj = partial(obj)
        return _json(obj, status=status, headers=headers)


# -- module helpers --------------------------------------------------------------------------------


def _json(body: Any, *, status: int = 200, content_type: str = JSON,
          headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        headers={"Content-Type": content_type, **(headers or {})})


def _page_not_found() -> web.Response:
    """A path no API group serves: the real server's last handler answers plain text, not a Status."""
    return web.Response(text="404 page not found\n", status=404, content_type="text/plain", charset="utf-8")


def _status_response(exc: StatusError) -> web.Response:
    return _json(exc.to_status(), status=exc.code, headers=exc.headers)


def _event_line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _int_param(query: Any, name: str, default: int, *, allow_negative: bool = False) -> int:
    value = query.get(name)
    if value in (None, ""):
        return default
    if not _GO_INTEGER.fullmatch(value):
        # The query parameter codec's own words (it does not name the parameter).
        raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    number = int(value)
    if number < 0 and not allow_negative:
        raise errors.bad_request(f"invalid value for {name}: must not be negative")
    return number


def _dry_run(query: Any) -> bool:
    values = query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise errors.invalid("Options", "", [errors.cause(
                "dryRun", f'Unsupported value: "{value}": supported values: "All"', "FieldValueNotSupported")])
    return bool(values)


def _parse(raw: bytes, *, yaml_allowed: bool = False) -> Any:
    if not raw.strip():
        raise errors.bad_request("the request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise errors.bad_request("the request body is nested too deeply (the limit is 10000 levels)") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        if yaml_allowed:
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as yaml_exc:
                raise errors.bad_request(f"error decoding YAML: {yaml_exc}") from yaml_exc
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


async def _read_body(request: web.Request, rt: ResourceType | None = None, *,
                     kind: tuple[str, str] | None = None) -> Any:
    """The request's object, from JSON, YAML, or protobuf when the body's kind is known (``kind``, or ``rt``'s)."""
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise errors.request_entity_too_large(MAX_BODY_BYTES)
    content_type = request.headers.get("Content-Type", JSON).split(";")[0].strip()
    if content_type == protobuf.CONTENT_TYPE and (rt is not None or kind is not None):
        return _protobuf_body(request, raw, rt, kind)
    if content_type not in (JSON, "application/yaml", "", "*/*"):
        raise errors.unsupported_media_type(content_type)
    return _parse(raw, yaml_allowed=content_type == "application/yaml")


def _protobuf_body(request: web.Request, raw: bytes, rt: ResourceType | None,
                   kind: tuple[str, str] | None) -> dict[str, Any]:
    try:
        if kind is not None:
            return protobuf.decode_object(raw, api_version=kind[0], kind=kind[1])
        assert rt is not None
        if not rt.builtin:
            raise protobuf.custom_resource_error(raw, api_version=rt.api_version, kind=rt.kind,
                                                 field_validation=request.query.get("fieldValidation", ""))
        return protobuf.decode_object(raw, api_version=rt.api_version, kind=rt.kind)
    except protobuf.ProtobufError as exc:
        raise StatusError(exc.code, exc.reason, str(exc)) from exc


async def _delete_options(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    options: dict[str, Any] = {}
    if request.headers.get("Content-Type", "").split(";")[0].strip() == protobuf.CONTENT_TYPE and raw:
        try:
            options = protobuf.decode_delete_options(raw)
        except protobuf.ProtobufError as exc:
            raise errors.bad_request(str(exc)) from exc
    elif raw.strip():
        parsed = _parse(raw)
        if not isinstance(parsed, dict):
            raise errors.bad_request("DeleteOptions must be a JSON object")
        options = parsed
    query = request.query
    if "gracePeriodSeconds" in query:
        options["gracePeriodSeconds"] = _int_param(query, "gracePeriodSeconds", 0)
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    if "orphanDependents" in query:
        options["orphanDependents"] = query["orphanDependents"] == "true"
    return options

"""What the real server says to a request without credentials: ``system:anonymous`` is Forbidden.

kube-apiserver runs with anonymous authentication on (its default): a request with no credentials, or with
an ``Authorization`` header that is not a bearer token, is not refused with 401 but authenticated as
``system:anonymous`` in ``system:unauthenticated``, and the default RBAC grants that user only the public
health and version paths (``system:public-info-viewer``). Everything else is answered 403 *before the body is
read*, with a message built from the request's attributes (``forbiddenMessage`` in the apiserver's
authorization filter). A bearer token that matches no one is still 401.

The emulator enforces no RBAC for authenticated users (see the README), but it does give anonymous requests
the same answer as a real cluster, so a client that lost its credentials learns it the same way on both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import StatusError

ANONYMOUS = "system:anonymous"
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})


def is_public(path: str) -> bool:
    """Paths every caller may read, credentials or not (the health checks' own sub-paths included)."""
    return path in PUBLIC_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/"))


@dataclass(frozen=True)
class RequestAttributes:
    """The part of the real server's RequestInfo that an authorization decision (and its message) names."""

    verb: str
    path: str
    resource: str = ""
    group: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""

    @property
    def is_resource_request(self) -> bool:
        return bool(self.resource)


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> RequestAttributes:
    """Read a request the way the real RequestInfoFactory does (``/api`` and ``/apis`` resource paths)."""
    parts = [p for p in path.split("/") if p]
    non_resource = RequestAttributes(verb=method.lower(), path=path)
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return non_resource
    watch_prefix = rest[0] == "watch"
    if watch_prefix:
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace = rest[1]
        # /namespaces/<name>/{status,finalize} are subresources of the namespace itself (which, as the
        # real server reads it, is "in" its own namespace); any other step is a namespaced resource.
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    if not rest:
        return non_resource
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = "/".join(rest[2:3])
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "get")
    if watch_prefix and method == "GET":
        verb = "watch"
    elif method == "GET" and not name:
        verb = "watch" if query.get("watch", "").lower() in ("1", "true") else "list"
        # A list or ?watch narrowed to one object by field selector is authorized as that object (not so a
        # watch by the legacy /watch/ prefix, whose verb is known before the query is read).
        for term in query.get("fieldSelector", "").split(","):
            key, _, value = term.partition("=")
            value = value.removeprefix("=").strip()
            if key.strip() == "metadata.name" and value:
                name = value
    elif method == "DELETE" and not name:
        verb = "deletecollection"
    return RequestAttributes(verb=verb, path=path, resource=resource, group=group, namespace=namespace,
                             name=name, subresource=subresource)


def forbidden(attributes: RequestAttributes, username: str = ANONYMOUS) -> StatusError:
    """403 Forbidden worded and detailed as the real server's authorization filter answers it."""
    if not attributes.is_resource_request:
        return StatusError(403, "Forbidden",
                           f'forbidden: User "{username}" cannot {attributes.verb} path "{attributes.path}"',
                           details={})
    resource = attributes.resource + (f"/{attributes.subresource}" if attributes.subresource else "")
    scope = (f'in the namespace "{attributes.namespace}"' if attributes.namespace else "at the cluster scope")
    why = (f'User "{username}" cannot {attributes.verb} resource "{resource}" in API group '
           f'"{attributes.group}" {scope}')
    qualified = f"{attributes.resource}.{attributes.group}" if attributes.group else attributes.resource
    subject = f'{qualified} "{attributes.name}"' if attributes.name else qualified
    details: dict[str, str] = {}
    if attributes.name:
        details["name"] = attributes.name
    if attributes.group:
        details["group"] = attributes.group
    details["kind"] = attributes.resource
    return StatusError(403, "Forbidden", f"{subject} is forbidden: {why}", details=details)

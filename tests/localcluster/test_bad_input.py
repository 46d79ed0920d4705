"""Hostile and malformed requests over raw HTTPS: each gets the right code and a useful Status, the server
stays up, and the store is untouched."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest
from conformance_support import Clients, RawResponse, assert_status, wait_for

JSON = "application/json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
SMP = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
CHECKSUMMED = ("configmaps", "secrets", "services", "serviceaccounts", "persistentvolumeclaims")


@dataclass
class Case:
    label: str
    method: str
    path: str  # relative to /api/v1/namespaces/<ns>/ when it does not start with "/"
    body: Any = None
    content_type: str | None = None
    code: int = 400
    reason: str | None = None
    says: tuple[str, ...] = ()  # substrings the message must contain (case-insensitive)
    cause: str | None = None  # a details.causes[].field that must be present
    text: str | None = None  # the whole body, when the answer is plain text rather than a Status
    reasonless: bool = False  # the Status carries no reason at all (a bare 500)


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def token(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode()


def cases(namespace: str) -> list[Case]:
    victim = "configmaps/victim"
    cm = {"apiVersion": "v1", "kind": "ConfigMap"}
    return [
        # -- bodies that are not JSON objects
        Case("truncated JSON", "POST", "configmaps", b'{"metadata": {"name": "x"', says=("json",)),
        Case("JSON array", "POST", "configmaps", b"[1, 2, 3]"),
        Case("JSON string", "POST", "configmaps", b'"configmap"'),
        # null decodes into an empty ConfigMap, which then lacks a name.
        Case("JSON null", "POST", "configmaps", b"null", code=422, reason="Invalid", cause="metadata.name"),
        Case("empty body", "POST", "configmaps", b""),
        Case("binary garbage", "POST", "configmaps", b"\xff\xfe\x00garbage"),
        Case("PUT array", "PUT", victim, b"[]"),
        # -- JSON of the wrong shape for the kind (decoded into Go structs by the real server)
        Case(
            "data value is a number",
            "POST",
            "configmaps",
            {**cm, "metadata": {"name": "x"}, "data": {"a": 1}},
            says=("ConfigMap.data",),
        ),
        Case("metadata is a string", "POST", "configmaps", {**cm, "metadata": "x"}, says=("metadata",)),
        Case(
            "name is a number", "POST", "configmaps", {**cm, "metadata": {"name": 7}}, says=("metadata.name",)
        ),
        Case(
            "labels is a list",
            "POST",
            "configmaps",
            {**cm, "metadata": {"name": "x", "labels": ["a"]}},
            says=("metadata.labels",),
        ),
        Case(
            "containers is a string",
            "POST",
            "pods",
            {"metadata": {"name": "x"}, "spec": {"containers": "x"}},
            says=("containers",),
        ),
        Case(
            "port is a string",
            "POST",
            "pods",
            {
                "metadata": {"name": "x"},
                "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": "http"}]}]},
            },
            says=("containerPort",),
        ),
        Case(
            "600 levels under data",
            "POST",
            "configmaps",
            b'{"metadata":{"name":"deep"},"data":{"a":' + nested(600) + b"}}",
        ),
        Case(
            "kind mismatch",
            "POST",
            "configmaps",
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}},
            says=("Secret",),
        ),
        Case(
            "apiVersion mismatch",
            "POST",
            "configmaps",
            {"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "x"}},
            says=("v2",),
        ),
        Case(
            "namespace mismatch",
            "POST",
            "configmaps",
            {**cm, "metadata": {"name": "x", "namespace": "other"}},
            says=("namespace",),
        ),
        Case("name differs from URL", "PUT", victim, {**cm, "metadata": {"name": "other"}}, says=("other",)),
        # -- unknown resources
        Case("unknown plural", "POST", "widgets", {"metadata": {"name": "x"}}, code=404, reason="NotFound"),
        # No API group serves it: the server's last handler answers in plain text, not with a Status.
        Case(
            "unknown group",
            "POST",
            f"/apis/nope.example.com/v1/namespaces/{namespace}/things",
            {"metadata": {"name": "x"}},
            code=404,
            text="404 page not found\n",
        ),
        Case("unknown group's discovery", "GET", "/apis/nope.example.com", code=404, text="404 page not found\n"),
        Case("unknown top-level path", "GET", "/nope", code=404, text="404 page not found\n"),
        Case(
            "unknown core version",
            "GET",
            f"/api/v2/namespaces/{namespace}/configmaps",
            code=404,
            reason="NotFound",
        ),
        Case(
            "unknown apps version",
            "GET",
            f"/apis/apps/v9/namespaces/{namespace}/statefulsets",
            code=404,
            reason="NotFound",
        ),
        Case(
            "unknown apps resource",
            "GET",
            f"/apis/apps/v1/namespaces/{namespace}/widgets",
            code=404,
            reason="NotFound",
        ),
        Case("missing object", "GET", "configmaps/nope", code=404, reason="NotFound", says=('"nope"',)),
        Case(
            "patch of a missing object",
            "PATCH",
            "configmaps/nope",
            {"data": {}},
            content_type=MERGE,
            code=404,
            reason="NotFound",
        ),
        Case("delete of a missing object", "DELETE", "configmaps/nope", code=404, reason="NotFound"),
        # -- invalid names and labels
        Case(
            "uppercase name",
            "POST",
            "configmaps",
            {**cm, "metadata": {"name": "Victim"}},
            code=422,
            reason="Invalid",
            cause="metadata.name",
            says=("RFC 1123",),
        ),
        Case(
            "300 character name",
            "POST",
            "configmaps",
            {**cm, "metadata": {"name": "a" * 300}},
            code=422,
            reason="Invalid",
            cause="metadata.name",
            says=("no more than 253",),
        ),
        Case(
            "name with a slash",
            "POST",
            "configmaps",
            {**cm, "metadata": {"name": "a/b"}},
            code=422,
            reason="Invalid",
            cause="metadata.name",
        ),
        Case(
            "no name",
            "POST",
            "configmaps",
            {**cm, "metadata": {}},
            code=422,
            reason="Invalid",
            cause="metadata.name",
            says=("name or generateName is required",),
        ),
        Case(
            "huge label value",
            "POST",
            "configmaps",
            {**cm, "metadata": {"name": "x", "labels": {"k": "v" * 100_000}}},
            code=422,
            reason="Invalid",
            cause="metadata.labels",
            says=("63",),
        ),
        Case(
            "bad label key",
            "POST",
            "configmaps",
            {**cm, "metadata": {"name": "x", "labels": {"bad key!": "v"}}},
            code=422,
            reason="Invalid",
            cause="metadata.labels",
        ),
        # -- size
        Case(
            "body over 3 MiB",
            "POST",
            "configmaps",
            {**cm, "metadata": {"name": "big"}, "data": {"a": "x" * (3 * 1024 * 1024 + 1)}},
            code=413,
            reason="RequestEntityTooLarge",
        ),
        # -- content types
        Case(
            "text/plain create",
            "POST",
            "configmaps",
            b"name: x",
            content_type="text/plain",
            code=415,
            reason="UnsupportedMediaType",
        ),
        Case(
            "form create",
            "POST",
            "configmaps",
            b"name=x",
            content_type="application/x-www-form-urlencoded",
            code=415,
            reason="UnsupportedMediaType",
        ),
        Case(
            "PATCH as plain JSON",
            "PATCH",
            victim,
            {"data": {"a": "2"}},
            content_type=JSON,
            code=415,
            reason="UnsupportedMediaType",
        ),
        Case(
            "PATCH as text",
            "PATCH",
            victim,
            b"data: {}",
            content_type="text/plain",
            code=415,
            reason="UnsupportedMediaType",
        ),
        # -- query parameters
        # The query parameter codec's words; they do not name the parameter.
        Case("limit not a number", "GET", "configmaps?limit=ten", says=('strconv.ParseInt: parsing "ten"',)),
        Case("list from a non-numeric resourceVersion", "GET", "configmaps?resourceVersion=abc",
             says=('invalid resource version: resourceVersion: Invalid value: "abc"',)),
        # Released apiservers answer these two with a bare 500 (kubernetes/kubernetes#139485, fix pending: 400).
        Case(
            "watch from a non-numeric resourceVersion",
            "GET",
            "configmaps?watch=1&resourceVersion=abc",
            code=500,
            reasonless=True,
            says=('resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax',),
        ),
        Case(
            "watch from a negative resourceVersion",
            "GET",
            "configmaps?watch=1&resourceVersion=-5",
            code=500,
            reasonless=True,
            says=('resourceVersion: Invalid value: "-5"',),
        ),
        Case("continue token not base64", "GET", "configmaps?limit=1&continue=%25%25%25", says=("continue",)),
        Case(
            "continue token not JSON",
            "GET",
            f"configmaps?limit=1&continue={token(b'not json')}",
            says=("continue",),
        ),
        Case(
            "continue token of the wrong shape",
            "GET",
            f"configmaps?limit=1&continue={token(b'[1]')}",
            says=("continue",),
        ),
        Case(
            "bad label selector",
            "GET",
            "configmaps?labelSelector=a%20in%20b",
            says=("unable to parse requirement",),
        ),
        Case("bad field selector", "GET", "configmaps?fieldSelector=data.a%3Db", says=("data.a",)),
        Case(
            "bad fieldValidation",
            "POST",
            "configmaps?fieldValidation=Loud",
            {**cm, "metadata": {"name": "x"}},
            code=422,
            reason="Invalid",
            cause="fieldValidation",
            says=("CreateOptions.meta.k8s.io",),
        ),
        Case(
            "bad fieldValidation on patch",
            "PATCH",
            f"{victim}?fieldValidation=Loud",
            {"data": {"a": "x"}},
            content_type=MERGE,
            code=422,
            reason="Invalid",
            cause="fieldValidation",
        ),
        Case(
            "bad propagationPolicy",
            "DELETE",
            f"{victim}?propagationPolicy=Sideways",
            code=422,
            reason="Invalid",
            cause="propagationPolicy",
        ),
        # -- patch bodies of the wrong shape
        Case("merge patch that is an array", "PATCH", victim, [1, 2], content_type=MERGE),
        Case("merge patch that is a string", "PATCH", victim, "x", content_type=MERGE),
        Case("strategic patch that is an array", "PATCH", victim, [{"data": {}}], content_type=SMP),
        Case("JSON patch that is an object", "PATCH", victim, {"op": "add"}, content_type=JSON_PATCH),
        Case("JSON patch of numbers", "PATCH", victim, [1, 2], content_type=JSON_PATCH),
        Case(
            "JSON patch test fails",
            "PATCH",
            victim,
            [{"op": "test", "path": "/data/a", "value": "2"}],
            content_type=JSON_PATCH,
            code=422,
            reason="Invalid",
        ),
        Case(
            "JSON patch removes a missing path",
            "PATCH",
            victim,
            [{"op": "remove", "path": "/data/zzz"}],
            content_type=JSON_PATCH,
            code=422,
            reason="Invalid",
        ),
        Case(
            "merge patch makes metadata a string",
            "PATCH",
            victim,
            {"metadata": "x"},
            content_type=MERGE,
            code=422,
            reason="Invalid",
            cause="patch",
        ),
        Case(
            "merge patch makes data a number",
            "PATCH",
            victim,
            {"data": {"a": 5}},
            content_type=MERGE,
            code=422,
            reason="Invalid",
            cause="patch",
        ),
        Case(
            "merge patch renames the object",
            "PATCH",
            victim,
            {"metadata": {"name": "other"}},
            content_type=MERGE,
        ),
        Case(
            "merge patch with a stale resourceVersion",
            "PATCH",
            victim,
            {"metadata": {"resourceVersion": "1"}, "data": {"a": "x"}},
            content_type=MERGE,
            code=409,
            reason="Conflict",
        ),
        Case(
            "apply without fieldManager",
            "PATCH",
            victim,
            {**cm, "metadata": {"name": "victim"}},
            content_type=APPLY,
            code=422,
            reason="Invalid",
            cause="fieldManager",
            says=("PatchOptions.meta.k8s.io", "is required for apply patch"),
        ),
        # Applied, then decoded: ConfigMap.data holds strings, so the patch is to blame.
        Case(
            "patch nested 600 levels",
            "PATCH",
            victim,
            b'{"data":' + nested(600) + b"}",
            content_type=MERGE,
            code=422,
            reason="Invalid",
            cause="patch",
            says=("cannot unmarshal object into Go struct field ConfigMap.data of type string",),
        ),
        # -- delete options of the wrong shape
        Case("DeleteOptions not JSON", "DELETE", victim, b'{"gracePeriodSeconds": ', content_type=JSON),
        Case("DeleteOptions an array", "DELETE", victim, b"[1]", content_type=JSON),
        Case(
            "DeleteOptions with a string grace period",
            "DELETE",
            victim,
            {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": "soon"},
            content_type=JSON,
            says=("gracePeriodSeconds",),
        ),
        Case(
            "DeleteOptions with bad preconditions",
            "DELETE",
            victim,
            {"preconditions": "x"},
            content_type=JSON,
            says=("preconditions",),
        ),
        Case(
            "DeleteOptions with a wrong uid precondition",
            "DELETE",
            victim,
            {"preconditions": {"uid": "nope"}},
            content_type=JSON,
            code=409,
            reason="Conflict",
            says=(
                'Operation cannot be fulfilled on ConfigMap "victim": the UID in the precondition (nope) does not'
                " match the UID in record",
            ),
        ),
        # -- unsupported verbs
        Case(
            "deletecollection of namespaces",
            "DELETE",
            "/api/v1/namespaces",
            code=405,
            reason="MethodNotAllowed",
        ),
    ]


def checksum(k8s: Clients, namespace: str) -> str:
    state = {}
    for plural in CHECKSUMMED:
        items = k8s.raw.request("GET", f"/api/v1/namespaces/{namespace}/{plural}").json["items"]
        state[plural] = sorted(
            json.dumps(i, sort_keys=True) for i in items if i["metadata"]["name"] != "kube-root-ca.crt"
        )
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def send(k8s: Clients, namespace: str, case: Case) -> RawResponse:
    path = case.path if case.path.startswith("/") else f"/api/v1/namespaces/{namespace}/{case.path}"
    return k8s.raw.request(case.method, path, case.body, content_type=case.content_type)


def check(case: Case, response: RawResponse) -> list[str]:
    """What is wrong with the answer to ``case`` (empty when it is right)."""
    if case.text is not None:
        if (response.status, response.body.decode(errors="replace")) != (case.code, case.text):
            return [f"{case.label}: expected {case.code} {case.text!r}, got {response.status} {response.body[:200]!r}"]
        return []
    try:
        body = response.json
    except ValueError:
        return [f"{case.label}: {response.status} with a body that is not JSON: {response.body[:200]!r}"]
    if response.status != case.code:
        return [f"{case.label}: expected {case.code}, got {response.status}: {body}"]
    problems = []
    try:
        assert_status(body, case.code, case.reason or {400: "BadRequest"}.get(case.code))
    except AssertionError as exc:
        problems.append(f"{case.label}: not a proper Status: {exc}")
    if case.reasonless and "reason" in body:
        problems.append(f"{case.label}: the Status has a reason, {body['reason']!r}; the real server gives none")
    message = str(body.get("message", "")).lower()
    problems += [
        f"{case.label}: message {body.get('message')!r} does not mention {s!r}"
        for s in case.says
        if s.lower() not in message
    ]
    if case.cause is not None:
        fields = [c.get("field") for c in (body.get("details") or {}).get("causes") or []]
        if case.cause not in fields:
            problems.append(f"{case.label}: causes {fields} lack {case.cause!r}")
    return problems


@pytest.fixture
def victim(k8s: Clients, namespace: str) -> str:
    """A namespace with a few objects in it, settled, and the checksum of its contents."""
    core = k8s.core
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "victim", "labels": {"app": "v"}}, "data": {"a": "1"}}
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "bystander"}, "data": {"b": "2"}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "secret"}, "stringData": {"k": "v"}})
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}
    )
    wait_for(
        lambda: any(
            sa.metadata.name == "default" for sa in core.list_namespaced_service_account(namespace).items
        ),
        timeout=60,
        message="the default ServiceAccount",
    )
    previous = [checksum(k8s, namespace)]

    def stable() -> bool:
        current = checksum(k8s, namespace)
        settled = current == previous[-1]
        previous.append(current)
        return settled

    wait_for(stable, timeout=60, interval=0.1, message="the namespace to settle")
    return previous[-1]


def test_hostile_requests_get_proper_statuses_and_change_nothing(
    k8s: Clients, namespace: str, victim: str
) -> None:
    revision_before = int(k8s.core.list_namespaced_config_map(namespace).metadata.resource_version)
    problems: list[str] = []
    for case in cases(namespace):
        problems += check(case, send(k8s, namespace, case))
        # The server is still up and answering after each request.
        assert k8s.raw.request("GET", "/readyz").status == 200, case.label
    assert not problems, "\n".join(problems)
    assert checksum(k8s, namespace) == victim
    victim_cm = k8s.core.read_namespaced_config_map("victim", namespace)
    assert victim_cm.data == {"a": "1"}
    assert int(victim_cm.metadata.resource_version) <= revision_before
    # And it still works normally.
    k8s.core.patch_namespaced_config_map("victim", namespace, {"data": {"a": "2"}})
    assert k8s.core.read_namespaced_config_map("victim", namespace).data == {"a": "2"}


def test_unauthenticated_hostile_requests_are_refused_first(
    k8s: Clients, namespace: str, victim: str
) -> None:
    for case in cases(namespace)[:10]:
        path = case.path if case.path.startswith("/") else f"/api/v1/namespaces/{namespace}/{case.path}"
        # Anonymous (no credentials) is authorized before the body is read: 403 whatever the body holds.
        response = k8s.raw.request(case.method, path, case.body, content_type=case.content_type, token="")
        assert response.status == 403, case.label
        verb = {"POST": "create", "PUT": "update"}[case.method]
        assert f'User "system:anonymous" cannot {verb} resource "configmaps"' in assert_status(
            response.json, 403, "Forbidden"
        )["message"], case.label
        # A bearer token that matches no one is refused as early, with 401.
        response = k8s.raw.request(case.method, path, case.body, content_type=case.content_type, token="nope")
        assert response.status == 401, case.label
        assert_status(response.json, 401, "Unauthorized")
    assert checksum(k8s, namespace) == victim


# -- cases with assertions of their own -----------------------------------------------------------


def test_ten_thousand_levels_of_nesting(k8s: Clients, namespace: str, victim: str) -> None:
    try:
        for body in (
            b'{"metadata":{"name":"deep"},"data":{"a":' + nested(10_000) + b"}}",
            b"[" * 10_000 + b"]" * 10_000,
        ):
            response = k8s.raw.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
            assert not check(Case("10000 levels", "POST", "configmaps"), response), response.body[:300]
        response = k8s.raw.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/victim",
            b'{"data":' + nested(10_000) + b"}",
            content_type=MERGE,
        )
        assert not check(Case("10000 levels", "PATCH", "configmaps/victim"), response), response.body[:300]
    finally:
        assert checksum(k8s, namespace) == victim


def test_negative_limit_means_no_limit(k8s: Clients, namespace: str, victim: str) -> None:
    response = k8s.raw.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?limit=-1")
    assert response.status == 200, response.body
    assert {i["metadata"]["name"] for i in response.json["items"]} >= {"victim", "bystander"}


def test_list_with_bad_resource_version(k8s: Clients, namespace: str, victim: str) -> None:
    response = k8s.raw.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?resourceVersion=abc")
    assert not check(Case("list rv", "GET", "configmaps", says=("resource",)), response), response.body[:300]


def test_bad_dry_run_value(k8s: Clients, namespace: str, victim: str) -> None:
    try:
        for method, path, body, content_type in (
            ("POST", "configmaps", {"metadata": {"name": "dry"}}, None),
            ("PATCH", "configmaps/victim", {"data": {"a": "9"}}, MERGE),
            ("DELETE", "configmaps/victim", None, None),
        ):
            case = Case(
                "dryRun",
                method,
                f"{path}?dryRun=Bogus",
                body,
                content_type,
                code=422,
                reason="Invalid",
                cause="dryRun",
            )
            assert not check(case, send(k8s, namespace, case))
    finally:
        assert checksum(k8s, namespace) == victim


def test_json_patch_with_unknown_operation(k8s: Clients, namespace: str, victim: str) -> None:
    try:
        for operations in ([{"op": "frobnicate", "path": "/data/a"}], [{"op": "add", "value": "x"}]):
            case = Case(
                "json patch", "PATCH", "configmaps/victim", operations, JSON_PATCH, code=422, reason="Invalid"
            )
            assert not check(case, send(k8s, namespace, case))
    finally:
        assert checksum(k8s, namespace) == victim


def test_post_to_a_named_object(k8s: Clients, namespace: str, victim: str) -> None:
    try:
        case = Case(
            "POST to an object",
            "POST",
            "configmaps/victim",
            {"metadata": {"name": "victim"}},
            code=405,
            reason="MethodNotAllowed",
        )
        assert not check(case, send(k8s, namespace, case))
    finally:
        assert checksum(k8s, namespace) == victim

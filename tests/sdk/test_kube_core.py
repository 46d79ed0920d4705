"""``kube_core``, the one core of both API clients, as tables: paths, answers to errors, what may be retried.

Pure code: no cluster, no socket. The clients' use of it over the wire is in test_kube_transient.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from devservers_sdk.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ClusterFailingError,
    ClusterUnreachableError,
    ConflictError,
    DevServerError,
    DevServerNotFoundError,
    FlavorNotFoundError,
    InvalidSpecError,
    NamespaceTerminatingError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    TryFailed,
    WatchDropped,
    WatchExpired,
)
from devservers_sdk.kube_core import (
    CONFIGMAPS,
    DEVSERVERS,
    FLAVORS,
    JSON_PATCH,
    MERGE_PATCH,
    PODS,
    STATEFULSETS,
    Resource,
    Retries,
    RetryPolicy,
    Safety,
    error_from_status,
    safety_of,
    status_failure,
    transient,
    transport_failure,
    url,
    watch_event,
    watch_query,
)


def status(code: int, reason: str, message: str, **details: Any) -> bytes:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                            "reason": reason, "message": message}
    if details:
        body["details"] = details
    return json.dumps(body).encode()


# -- paths ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("resource", "namespace", "name", "subresource", "path"), [
    (DEVSERVERS, "alice", None, None, "/apis/devservers.io/v1/namespaces/alice/devservers"),
    (DEVSERVERS, None, None, None, "/apis/devservers.io/v1/devservers"),
    (DEVSERVERS, "alice", "mydev", "status", "/apis/devservers.io/v1/namespaces/alice/devservers/mydev/status"),
    (FLAVORS, "alice", "cpu-small", None, "/apis/devservers.io/v1/devserverflavors/cpu-small"),
    (PODS, "alice", "mydev-0", "exec", "/api/v1/namespaces/alice/pods/mydev-0/exec"),
    (STATEFULSETS, "alice", "mydev", None, "/apis/apps/v1/namespaces/alice/statefulsets/mydev"),
    (CONFIGMAPS, "a b", "x/y", None, "/api/v1/namespaces/a%20b/configmaps/x%2Fy"),
])
def test_resource_paths(resource: Resource, namespace: str | None, name: str | None, subresource: str | None,
                        path: str) -> None:
    assert resource.path(namespace, name, subresource) == path


def test_a_subresource_needs_a_name() -> None:
    with pytest.raises(ValueError, match="subresource 'status' of devservers needs an object name"):
        DEVSERVERS.path("alice", None, "status")


def test_urls_leave_out_absent_query_values() -> None:
    assert url("https://k8s:6443/", "/api/v1/pods", [("watch", True), ("labelSelector", None), ("limit", 5)]) \
        == "https://k8s:6443/api/v1/pods?watch=true&limit=5"
    assert url("https://k8s:6443", "/api/v1/pods", [("continue", None)]) == "https://k8s:6443/api/v1/pods"


# -- answers to errors ------------------------------------------------------------------------------------

@dataclass
class Row:
    code: int
    body: bytes | str | None
    error: type[DevServerError]
    words: str
    kind: str = "DevServer"
    name: str | None = "mydev"
    namespace: str | None = "alice"
    reason: str | None = None
    invalid: str | None = None  # the field a 422 names


ROWS = {
    "401": Row(401, status(401, "Unauthorized", "Unauthorized"), AuthenticationError, "401 Unauthorized",
               reason="Unauthorized"),
    "403 rbac": Row(403, status(403, "Forbidden", 'devservers.devservers.io "mydev" is forbidden: User "bob" '
                                "cannot get resource"), PermissionDeniedError, "Permission denied for DevServer "
                    "'mydev' in namespace 'alice'", reason="Forbidden"),
    "403 anonymous": Row(403, status(403, "Forbidden", 'User "system:anonymous" cannot list resource'),
                         AuthenticationError, "received no credentials"),
    "403 terminating": Row(403, status(403, "Forbidden", 'unable to create new content in namespace alice because '
                                       "it is being terminated",
                                       causes=[{"reason": "NamespaceTerminating"}]),
                           NamespaceTerminatingError, "Namespace 'alice' is being deleted"),
    "404 devserver": Row(404, status(404, "NotFound", 'devservers.devservers.io "mydev" not found'),
                         DevServerNotFoundError, "DevServer 'mydev' not found in namespace 'alice'",
                         reason="NotFound"),
    "404 flavor": Row(404, status(404, "NotFound", 'devserverflavors.devservers.io "big" not found'),
                      FlavorNotFoundError, "Flavor 'big' does not exist", kind="DevServerFlavor", name="big",
                      namespace=None),
    "404 plain-text fall-through": Row(404, b"404 page not found\n", NotFoundError,
                                       "the devservers CRDs are not installed", name=None, reason="NotFound"),
    "404 namespace": Row(404, status(404, "NotFound", 'namespaces "alice" not found'), NotFoundError,
                         "Namespace 'alice' does not exist", kind="Pod", name="p"),
    "409 exists": Row(409, status(409, "AlreadyExists", 'devservers.devservers.io "mydev" already exists'),
                      AlreadyExistsError, "DevServer 'mydev' in namespace 'alice' already exists",
                      reason="AlreadyExists"),
    "409 conflict": Row(409, status(409, "Conflict", "the object has been modified"), ConflictError,
                        "changed by someone else", reason="Conflict"),
    "422 field": Row(422, status(422, "Invalid", 'DevServer.devservers.io "mydev" is invalid: spec.mode: '
                                 'Unsupported value: "huge"', causes=[{"field": "spec.mode"}]),
                     InvalidSpecError, "was refused by the server", invalid="spec.mode"),
    "400": Row(400, status(400, "BadRequest", "unable to parse requirement"), InvalidSpecError,
               "rejected as a bad request", name=None),
    "429": Row(429, status(429, "TooManyRequests", "too many requests"), ServerError, "throttled"),
    "500 status": Row(500, status(500, "InternalError", "etcdserver: leader changed"), ServerError,
                      "500 InternalError: etcdserver: leader changed"),
    "502 html page": Row(502, b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body></html>",
                         ServerError, "(502 BadGateway: <html> <head><title>502 Bad Gateway</title></head> <body>nginx",
                         reason="BadGateway"),
    "503 empty body": Row(503, b"", ServerError, "(503 ServiceUnavailable: ServiceUnavailable)",
                          reason="ServiceUnavailable"),
    "504 not a dict": Row(504, b'"gateway timeout"', ServerError, "gateway timeout"),
    "418 unexpected": Row(418, status(418, "Teapot", "short and stout"), ServerError, "Unexpected answer"),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_every_answer_maps_to_one_error(row: Row) -> None:
    error = error_from_status(row.code, row.body, kind=row.kind, name=row.name, namespace=row.namespace,
                              context="ctx")
    assert type(error) is row.error, (type(error), error)
    assert row.words in str(error), str(error)
    assert error.status == row.code
    if row.reason is not None:
        assert error.reason == row.reason
    if row.invalid is not None:
        assert isinstance(error, InvalidSpecError) and error.field == row.invalid


def test_a_long_page_is_shortened_in_the_message() -> None:
    page = ("<html>" + "x" * 5000 + "</html>").encode()
    error = error_from_status(502, page, kind="Pod", namespace="alice")
    assert len(str(error)) < 600 and "..." in str(error)


# -- what may be retried ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "body", "content_type", "safety"), [
    ("GET", None, None, "read"),
    ("PUT", {"metadata": {"name": "a"}}, None, "write"),
    ("PUT", {"metadata": {"name": "a", "resourceVersion": "7"}}, None, "conditional"),
    ("PATCH", {"spec": {"image": "a"}}, MERGE_PATCH, "write"),
    ("PATCH", {"metadata": {"resourceVersion": "7"}}, MERGE_PATCH, "conditional"),
    ("PATCH", [{"op": "replace", "path": "/spec/image", "value": "a"}], JSON_PATCH, "write"),
    ("PATCH", [{"op": "add", "path": "/spec/x", "value": 1}], JSON_PATCH, "once"),
    ("PATCH", {"spec": {}}, "application/strategic-merge-patch+json", "once"),
    ("PATCH", {"metadata": {"resourceVersion": "7", "ownerReferences": []}},
     "application/strategic-merge-patch+json", "conditional"),
    ("DELETE", {"propagationPolicy": "Background"}, None, "write"),
    ("DELETE", {"preconditions": {"uid": "u"}}, None, "conditional"),
    ("POST", {"metadata": {"generateName": "e."}}, None, "once"),
])
def test_safety_is_judged_from_the_request(method: str, body: Any, content_type: str | None, safety: Safety) -> None:
    assert safety_of(method, body, content_type) == safety


@dataclass
class FakeClock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def unreachable() -> ClusterUnreachableError:
    return ClusterUnreachableError("Cannot reach the cluster of context 'c' at https://k8s: connection reset by "
                                   "peer. Check it.", context="c", server="https://k8s")


def answered(code: int, body: bytes = b"", retry_after: str | None = None, reason: str = "") -> TryFailed:
    if reason:
        body = status(code, reason, "m")
    return status_failure(code, body, retry_after, kind="ConfigMap", name="x", namespace="alice", context="c")


# (safety, the failure, retried?) for every pair that decides something
VERDICTS = [
    ("read", lambda: answered(503), True),
    ("read", lambda: answered(502, b"<html>Bad Gateway</html>"), True),
    ("read", lambda: answered(429), True),
    ("read", lambda: answered(404, reason="NotFound"), False),
    ("read", lambda: answered(403, reason="Forbidden"), False),
    ("read", lambda: transport_failure(unreachable(), connected=True), True),
    ("read", lambda: transport_failure(unreachable(), connected=False), False),  # refused, DNS, TLS
    ("write", lambda: answered(500), True),
    ("write", lambda: answered(409, reason="Conflict"), True),  # a pure set: apply it again
    ("conditional", lambda: answered(409, reason="Conflict"), False),  # the caller must re-read
    ("conditional", lambda: answered(503), True),
    ("create", lambda: answered(504), True),  # stamped with its token: AlreadyExists will tell
    ("create", lambda: transport_failure(unreachable(), connected=True), True),
    ("create", lambda: answered(409, reason="AlreadyExists"), False),
    ("once", lambda: answered(500), False),  # a generateName create may have been made
    ("once", lambda: answered(502, b"<html>Bad Gateway</html>"), False),
    ("once", lambda: transport_failure(unreachable(), connected=True), False),
    ("once", lambda: answered(429), True),  # throttled before anything was done
    ("once", lambda: answered(409, reason="Conflict"), True),  # refused as a whole: nothing was done
    ("read", lambda: answered(409, reason="Conflict"), True),
]


@pytest.mark.parametrize(("safety", "failure", "retried"), VERDICTS)
def test_what_is_retried(safety: Safety, failure: Any, retried: bool) -> None:
    retries = Retries(RetryPolicy(clock=FakeClock()), safety=safety, server="https://k8s")
    made = failure()
    verdict = retries.after(made)
    assert (verdict.pause is not None) == retried
    if not retried:  # a first try that fails for good raises its own error, not a give-up
        assert verdict.error is made.error


def test_a_read_timeout_is_retried_once() -> None:
    retries = Retries(RetryPolicy(clock=FakeClock()), safety="read", server="https://k8s")
    assert retries.after(transport_failure(unreachable(), connected=True, timed_out=True)).pause is not None
    verdict = retries.after(transport_failure(unreachable(), connected=True, timed_out=True))
    assert verdict.pause is None and isinstance(verdict.error, ClusterUnreachableError)


def test_retry_after_is_honoured_within_the_total() -> None:
    clock = FakeClock()
    retries = Retries(RetryPolicy(clock=clock, backoff=0.01, total=10), safety="read", server="https://k8s")
    assert retries.after(answered(429, retry_after="3")).pause == 3.0
    clock.now += 3
    assert retries.after(answered(503, retry_after="4")).pause == 4.0
    clock.now += 4
    # 7 s gone, 5 asked for: past the total, so give up now, saying what the server kept answering.
    verdict = retries.after(answered(429, retry_after="5"))
    assert verdict.pause is None and isinstance(verdict.error, ClusterFailingError)
    assert verdict.error.attempts == 3
    assert "kept answering 429 and 503 after 3 attempts over 7.0s" in str(verdict.error)


def test_backoff_doubles_within_bounds_until_the_attempts_run_out() -> None:
    clock = FakeClock()
    retries = Retries(RetryPolicy(clock=clock, attempts=4, backoff=1, max_backoff=3), safety="read", server=None)
    pauses = []
    for _ in range(3):
        verdict = retries.after(answered(500))
        assert verdict.pause is not None
        pauses.append(verdict.pause)
        clock.now += verdict.pause
    for pause, ceiling in zip(pauses, [1, 2, 3], strict=True):
        assert ceiling / 2 <= pause <= ceiling
    last = retries.after(answered(500))
    assert last.pause is None and isinstance(last.error, ClusterFailingError) and last.error.attempts == 4


def test_a_final_failure_after_a_maybe_applied_try_asks_to_settle() -> None:
    retries = Retries(RetryPolicy(clock=FakeClock()), safety="create", server=None)
    first = retries.after(answered(504))
    assert first.pause is not None and not first.settle
    second = retries.after(answered(409, reason="AlreadyExists"))
    assert second.pause is None and second.settle and isinstance(second.error, AlreadyExistsError)
    # The same AlreadyExists on a first try: nothing of ours can have been applied, nothing to settle.
    fresh = Retries(RetryPolicy(clock=FakeClock()), safety="create", server=None)
    assert not fresh.after(answered(409, reason="AlreadyExists")).settle


@pytest.mark.parametrize(("error", "expected"), [
    (unreachable(), True),
    (WatchDropped("dropped", context="c", server="s"), True),
    (ServerError("x", status=503), True),
    (ServerError("x", status=502), True),
    (ServerError("x", status=429), True),
    (ClusterFailingError("x", attempts=5, elapsed=3.0, status=500), True),
    (ServerError("x", status=501), False),
    (ConflictError("x", status=409), False),
    (NotFoundError("x", status=404), False),
    (InvalidSpecError("x", status=422), False),
    (RuntimeError("a bug"), False),
])
def test_transient_errors(error: BaseException, expected: bool) -> None:
    assert transient(error) is expected


# -- watches ----------------------------------------------------------------------------------------------

def watch_line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode()


@pytest.mark.parametrize(("line", "outcome"), [
    (watch_line("ADDED", {"metadata": {"name": "a"}}), ("ADDED", {"metadata": {"name": "a"}})),
    (watch_line("BOOKMARK", {"metadata": {"resourceVersion": "9"}}), ("BOOKMARK", {"metadata": {"resourceVersion": "9"}})),
    (watch_line("ERROR", {"code": 410, "reason": "Expired", "message": "too old resource version"}), WatchExpired),
    (watch_line("ERROR", {"code": 503, "reason": "ServiceUnavailable", "message": "apiserver shutting down"}),
     WatchDropped),
    (watch_line("ERROR", {"code": 403, "reason": "Forbidden", "message": "nope"}), PermissionDeniedError),
])
def test_watch_events(line: bytes, outcome: Any) -> None:
    if isinstance(outcome, tuple):
        assert watch_event(line, CONFIGMAPS, "alice", context="c", server="s") == outcome
    else:
        with pytest.raises(outcome):
            watch_event(line, CONFIGMAPS, "alice", context="c", server="s")


def test_a_watch_query_never_asks_for_less_than_a_second() -> None:
    query = dict(watch_query(field_selector=None, label_selector="a=b", resource_version="5", timeout_seconds=0.2))
    assert query == {"watch": "true", "allowWatchBookmarks": "true", "fieldSelector": None, "labelSelector": "a=b",
                     "resourceVersion": "5", "timeoutSeconds": 1}

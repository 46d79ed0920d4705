"""The error tree and the one status table: every API status maps to an error a person can act on."""

from __future__ import annotations

import pytest

from devservers_sdk import errors
from devservers_sdk.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ClusterUnreachableError,
    ConfigurationError,
    ConflictError,
    DevServerError,
    DevServerFailedError,
    DevServerNotFoundError,
    DevServerNotReadyError,
    ExecError,
    FlavorNotFoundError,
    InvalidSpecError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    WaitTimeoutError,
    error_from_api,
)

# (status, reason, server message, kind, name, expected class, phrases the message must contain)
STATUS_TABLE = [
    (401, "Unauthorized", "Unauthorized", "DevServer", "mydev", AuthenticationError,
     ["rejected the credentials", "expired", "context 'ctx'", "Log in again"]),
    (403, "Forbidden", 'devservers.devservers.io "mydev" is forbidden: User "bob" cannot get resource',
     "DevServer", "mydev", PermissionDeniedError,
     ["Permission denied", "DevServer 'mydev' in namespace 'alice'", "cluster admin"]),
    # No credentials at all (a failed exec plugin): a real API server judges system:anonymous and says 403.
    (403, "Forbidden", 'devservers.devservers.io is forbidden: User "system:anonymous" cannot list resource '
     '"devservers" in API group "devservers.io" in the namespace "alice"', "DevServer", "", AuthenticationError,
     ["received no credentials", "context 'ctx'", "system:anonymous", "Log in again"]),
    (404, "NotFound", 'devservers.devservers.io "mydev" not found', "DevServer", "mydev", DevServerNotFoundError,
     ["DevServer 'mydev' not found in namespace 'alice'. List yours with: devctl list"]),
    (404, "NotFound", 'devserverflavors.devservers.io "huge" not found', "DevServerFlavor", "huge",
     FlavorNotFoundError, ["Flavor 'huge' does not exist", "devctl flavors"]),
    (404, "NotFound", 'pods "mydev-0" not found', "Pod", "mydev-0", NotFoundError,
     ["Pod 'mydev-0' in namespace 'alice' not found"]),
    (404, "NotFound", "the server could not find the requested resource", "DevServer", "mydev", NotFoundError,
     ["CRDs are not installed", "kubectl apply -f crds/"]),
    # kube-apiserver's plain-text answer for a group or CRD resource it does not serve.
    (404, "", "404 page not found", "DevServerFlavor", "", NotFoundError,
     ["CRDs are not installed", "kubectl apply -f crds/"]),
    (404, "NotFound", 'namespaces "alice" not found', "DevServer", "", NotFoundError,
     ["Namespace 'alice' does not exist", "kubectl create namespace alice"]),
    (409, "AlreadyExists", 'devservers.devservers.io "mydev" already exists', "DevServer", "mydev",
     AlreadyExistsError, ["DevServer 'mydev' in namespace 'alice' already exists", "devctl delete mydev"]),
    (409, "Conflict", 'Operation cannot be fulfilled on devservers.devservers.io "mydev": the object has been '
     "modified", "DevServer", "mydev", ConflictError, ["changed by someone else", "Retry"]),
    (422, "Invalid", 'DevServer.devservers.io "mydev" is invalid: spec.mode: Unsupported value: "big"',
     "DevServer", "mydev", InvalidSpecError, ["refused by the server", "spec.mode", "Fix the spec"]),
    (400, "BadRequest", "the body of the request was in an unknown format", "DevServer", "mydev",
     InvalidSpecError, ["bad request"]),
    (429, "TooManyRequests", "slow down", "DevServer", "mydev", ServerError, ["throttled", "Retry"]),
    (500, "InternalError", "Internal error occurred: boom", "DevServer", "mydev", ServerError,
     ["failed to handle", "500 InternalError", "boom", "cluster admin"]),
    (503, "ServiceUnavailable", "etcd is down", "DevServer", "mydev", ServerError, ["503", "etcd is down"]),
    (418, "Teapot", "short and stout", "DevServer", "mydev", ServerError, ["Unexpected answer", "418"]),
]


@pytest.mark.parametrize(("status", "reason", "message", "kind", "name", "cls", "phrases"), STATUS_TABLE,
                         ids=[f"{row[0]}-{row[1]}-{row[3]}" for row in STATUS_TABLE])
def test_status_table(status: int, reason: str, message: str, kind: str, name: str,
                      cls: type[DevServerError], phrases: list[str]) -> None:
    error = error_from_api(status, reason, message, kind=kind, name=name, namespace="alice", context="ctx")
    assert type(error) is cls
    assert isinstance(error, DevServerError)
    assert (error.status, error.reason) == (status, reason)
    for phrase in phrases:
        assert phrase in str(error), f"{phrase!r} missing from {error}"
    # A message is one line of whole sentences.
    assert "\n" not in str(error) and str(error)[0].isupper()


def test_invalid_spec_names_the_field_from_causes_first() -> None:
    error = error_from_api(422, "Invalid", 'DevServer.devservers.io "x" is invalid: <a summary>', kind="DevServer",
                           name="x", namespace="alice",
                           causes=[{"reason": "FieldValueRequired", "field": "spec.flavor", "message": "Required"}])
    assert isinstance(error, InvalidSpecError) and isinstance(error, ValueError)
    assert error.field == "spec.flavor"


def test_invalid_spec_field_parsed_from_message_without_causes() -> None:
    error = error_from_api(422, "Invalid", 'DevServer.devservers.io "x" is invalid: spec.lifecycle.timeToLive: '
                           'Invalid value: "8"', kind="DevServer", name="x", namespace="alice")
    assert isinstance(error, InvalidSpecError)
    assert error.field == "spec.lifecycle.timeToLive"


def test_flavor_not_found_lists_available_flavors() -> None:
    error = errors.flavor_not_found("huge", ["gpu-small", "cpu-small"])
    assert isinstance(error, FlavorNotFoundError) and isinstance(error, NotFoundError)
    assert error.available == ["gpu-small", "cpu-small"]
    assert "Available flavors: cpu-small, gpu-small" in str(error)
    assert "No flavors are installed" in str(errors.flavor_not_found("huge", []))


def test_error_attributes() -> None:
    assert isinstance(WaitTimeoutError("slow", phase="Pending"), TimeoutError)
    assert WaitTimeoutError("slow", phase="Pending").phase == "Pending"
    assert DevServerFailedError("failed", devserver="obj").devserver == "obj"
    result = type("R", (), {"returncode": 3})()
    assert ExecError("exit 3", result=result).returncode == 3
    unreachable = ClusterUnreachableError("down", context="c", server="https://x")
    assert (unreachable.context, unreachable.server) == ("c", "https://x")
    assert issubclass(ConfigurationError, DevServerError) and issubclass(DevServerNotReadyError, DevServerError)


def test_invalid_spec_drops_the_servers_line_about_skipped_cel_rules() -> None:
    # kube-apiserver's answer to the seed's DevServer with a 257-character owner: besides the real cause, a
    # field-less "<nil>" line saying the CRD's CEL rules were skipped. The SDK names the field and drops it.
    message = ('DevServer.devservers.io "seed-full" is invalid: [spec.owner: Too long: may not be more than 256 '
               'bytes, <nil>: Invalid value: null: some validation rules were not checked because the object was '
               'invalid; correct the existing errors to complete validation]')
    causes = [{"reason": "FieldValueTooLong", "message": "Too long: may not be more than 256 bytes",
               "field": "spec.owner"},
              {"reason": "FieldValueInvalid", "message": "Invalid value: null: some validation rules were not "
               "checked because the object was invalid; correct the existing errors to complete validation",
               "field": "<nil>"}]
    for order in (causes, causes[::-1]):
        error = error_from_api(422, "Invalid", message, kind="DevServer", name="seed-full", namespace="alice",
                               causes=order)
        assert error.field == "spec.owner"
        assert "<nil>" not in str(error) and ", ]" not in str(error)
        assert "[spec.owner: Too long: may not be more than 256 bytes]" in str(error)

"""The fast read path of ``devctl list`` held to the models it must not import, without a cluster.

``devservers_sdk.lightweight_read`` reads the DevServer resource's names and the models' bounds from
``contract`` (no pydantic there) and applies the models' rules itself, because importing ``models`` would
import pydantic. Here ``check_readable`` is held against ``DevServer.from_manifest`` on a corpus of odd objects
and at each bound on both sides (it may hand more to the client than the models refuse, never fewer); the
renderer prints a manifest as it prints the model read from it; and every kubeconfig the fast path leaves to the client is refused before anything is sent.
"""

from __future__ import annotations

import copy
import io
import os
import re
import subprocess
import sys
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from devservers_cli import render
from pydantic import BaseModel

from devservers_sdk import lightweight_read as light
from devservers_sdk import models
from devservers_sdk.contract import (
    MAX_CHECKPOINT_TIMEOUT,
    MAX_NAME_LENGTH,
    MAX_NCCL_SETTINGS,
    MAX_NCCL_VALUE_LENGTH,
    MAX_WORLD_SIZE,
    MIN_IDLE_TIMEOUT,
)
from devservers_sdk.errors import FullClientRequired
from devservers_sdk.lightweight_read import check_readable, list_devservers
from devservers_sdk.models import DevServer, DevServerSpec, DevServerStatus, DistributedSpec, LifecycleSpec

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
DELETE = object()


# -- the copies ---------------------------------------------------------------------------------------------

def _aliases(model: type[BaseModel]) -> set[str]:
    return {str(field.validation_alias or name) for name, field in model.model_fields.items()}


def _literal(annotation: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` (inside an ``Optional`` too)."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return next(_literal(arg) for arg in typing.get_args(annotation) if arg is not type(None))


def test_the_fast_path_expects_exactly_the_fields_the_models_know() -> None:
    # A field only the models know would send every object that sets it to the client; a field only the
    # fast path knows would let through an object the models refuse.
    fields = {"": {"apiVersion", "kind"} | _aliases(DevServer), "spec": _aliases(DevServerSpec),
              "spec.distributed": _aliases(DistributedSpec), "spec.lifecycle": _aliases(LifecycleSpec)}
    assert fields == light.FIELDS


def test_the_fast_path_and_the_contract_load_neither_pydantic_nor_kubernetes() -> None:
    # What `devctl list` imports before it knows whether the fast path will do: the reader, the names and
    # rules it shares with the models, and the renderer with the SDK views it calls.
    code = ("import sys, devservers_sdk.contract, devservers_sdk.lightweight_read, devservers_cli.render; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'pydantic_core', 'kubernetes', "
            "'urllib3'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.stdout.strip() == "[]"


# -- check_readable against the models ---------------------------------------------------------------------

BASE: dict[str, Any] = {
    "apiVersion": "devservers.io/v1", "kind": "DevServer",
    "metadata": {"name": "mydev", "namespace": "alice", "uid": "5e1f", "resourceVersion": "42", "generation": 3,
                 "creationTimestamp": "2026-05-01T10:00:00Z", "labels": {"team": "ml"},
                 "managedFields": [{"manager": "devctl"}]},
    "spec": {"owner": "alice", "flavor": "cpu-small", "image": "pytorch/pytorch:2.5.1", "mode": "distributed",
             "distributed": {"worldSize": 3, "nprocsPerNode": 2, "backend": "gloo",
                             "ncclSettings": {"NCCL_DEBUG": "INFO", "NCCL_SOCKET_IFNAME": "eth0"}},
             "persistentHomeSize": "50Gi", "sharedVolumeClaimName": "datasets",
             "lifecycle": {"idleTimeout": 3600, "autoShutdown": True, "expirationTime": "2026-05-03T10:00:00Z",
                           "timeToLive": "1d"}},
    "status": {"phase": "Starting", "readyReplicas": 2, "replicas": 3, "observedGeneration": 3,
               "pods": ["mydev-0", "mydev-1"], "expiresAt": "2026-05-02T10:00:00Z",
               "lastActivityTime": "2026-05-01T11:00:00.250000Z", "lastActivitySource": "shell",
               "conditions": [{"type": "Ready", "status": "False", "reason": "PodsStarting",
                               "message": "2/3 pods ready", "lastTransitionTime": "2026-05-01T10:05:00+00:00"},
                              {"type": "Expiring", "status": "Unknown", "reason": "Soon",
                               "lastTransitionTime": "2026-05-01T10:01:00Z"}],
               "fieldFromANewerOperator": {"x": 1}},
}


def variant(**changes: Any) -> dict[str, Any]:
    """``BASE`` with changes at dotted paths (``spec.lifecycle.timeToLive="4h"``; ``DELETE`` removes)."""
    manifest = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.replace("__", ".").split(".")
        node = manifest
        for key in parents:
            node = node[key]
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return manifest


# Objects the fast path reads itself: the models read them too, and the table must come out the same.
READABLE = {
    "everything": BASE,
    "minimal": {"metadata": {"name": "tiny"}, "spec": {"owner": "bob", "flavor": "cpu-small"}},
    "distributed without its section": variant(spec__distributed=DELETE),
    "deadline from the spec": variant(status__expiresAt=DELETE),
    "time-to-live only": variant(status__expiresAt=DELETE, spec__lifecycle__expirationTime=DELETE),
    "an offset time zone": variant(status__expiresAt=DELETE, spec__lifecycle__expirationTime="2026-05-01T15:00:00+02:00"),
    "nulls where the models allow them": variant(spec__image=None, status__phase=None, status__message=None,
                                                 spec__distributed=None),
    "conditions that all hold": variant(status__conditions=[{"type": "Ready", "status": "True",
                                                              "reason": "PodsReady"}]),
    "the operator's message": variant(status__message="3/3 pods ready", status__phase="Running"),
    "an integer home size": variant(spec__persistentHomeSize=50),
    "no persistent home (zero home size)": variant(spec__persistentHomeSize="0"),
    "standalone": variant(spec__mode="standalone", spec__distributed=DELETE, status=DELETE),
    "expired": variant(status__expiresAt="2026-05-01T11:00:00Z"),
    "GPUs read and a cost": variant(
        spec__distributed__nprocsPerNode="auto", spec__lifecycle__minGpuUtilization={"percent": 10, "window": "1h"},
        status__gpuLowSince="2026-05-01T11:30:00Z",
        status__gpus=[{"rank": r, "index": i, "utilization": 3.0 + r, "memoryUsedMib": 100.0,
                       "memoryTotalMib": 81920.0, "observedAt": "2026-05-01T11:59:00Z"} for r in (0, 1) for i in (0, 1)],
        status__cost={"perHour": "2.5", "currency": "USD", "accumulated": "1.25", "podSeconds": 1800,
                      "runningPods": 2, "since": "2026-05-01T11:00:00Z"}),
    "the seed's shape: a distributed section beside mode standalone, enableSSH, an e-mail owner": variant(
        spec__mode="standalone", spec__enableSSH=True, spec__owner="user@company.com"),
    "a deadline before creation": variant(status__phase="Expired"),
}

# Objects the models refuse: the fast path must hand each to the client, which reports it.
REFUSED_BY_THE_MODELS = {
    "lower-case NCCL key": variant(spec__distributed__ncclSettings={"NCCL_debug": "1"}),
    "NCCL key that loads a library": variant(spec__distributed__ncclSettings={"NCCL_NET_PLUGIN": "x"}),
    "NUL in an NCCL value": variant(spec__distributed__ncclSettings={"NCCL_DEBUG": "a\0b"}),
    "long NCCL value": variant(spec__distributed__ncclSettings={"NCCL_DEBUG": "x" * 4097}),
    "too many NCCL settings": variant(spec__distributed__ncclSettings={f"NCCL_X{i}": "1" for i in range(65)}),
    "negative home size": variant(spec__persistentHomeSize="-1Gi"),
    "expiration without a time zone": variant(spec__lifecycle__expirationTime="2026-05-03T10:00:00"),
    "lifetime too long for a timedelta": variant(spec__lifecycle__timeToLive="99999999999d"),
    "zero lifetime": variant(spec__lifecycle__timeToLive="0s"),
    "world size out of bounds": variant(spec__distributed__worldSize=1001),
    "nprocs neither a number nor auto": variant(spec__distributed__nprocsPerNode="all"),
    "GPU policy over 100 percent": variant(spec__lifecycle__minGpuUtilization={"percent": 101, "window": "1h"}),
    "unknown backend": variant(spec__distributed__backend="mpi"),
    "short idle timeout": variant(spec__lifecycle__idleTimeout=30),
    "auto shutdown as text": variant(spec__lifecycle__autoShutdown="yes"),
    "null lifecycle": variant(spec__lifecycle=None),
    "null mode": variant(spec__mode=None),
    "null status": variant(status=None),
    "unknown spec field": variant(spec__gpus=1),
    "unknown top-level field": variant(extra=True),
    "name with capitals": variant(metadata__name="My-Dev"),
    "name too long for its pods": variant(metadata__name="a" * 53),
    "another kind": variant(kind="Pod"),
    "unknown phase": variant(status__phase="Sleeping"),
    "condition status not a boolean word": variant(status__conditions=[{"type": "Ready", "status": "Maybe"}]),
    "condition with a null reason": variant(status__conditions=[{"type": "Ready", "status": "True", "reason": None}]),
    "null conditions": variant(status__conditions=None),
    "pods not a list": variant(status__pods="mydev-0"),
    "owner missing": variant(spec__owner=DELETE),
    "metadata not a mapping": variant(metadata=["mydev"]),
}

# Objects the models would read but the fast path leaves to them: spellings only they know how to take.
LEFT_TO_THE_MODELS = {
    "a count as text": variant(status__readyReplicas="2"),
    "a time with a space": variant(status__lastActivityTime="2026-05-01 11:00:00Z"),
    "a time without a zone in the status": variant(status__stoppedAt="2026-05-01T11:00:00"),
}


# Each of the models' bounds on both sides (``contract`` holds the numbers): the two readers agree at each.
AT_THE_BOUNDS = {
    "longest name": (variant(metadata__name="a" * MAX_NAME_LENGTH), True),
    "a name one longer": (variant(metadata__name="a" * (MAX_NAME_LENGTH + 1)), False),
    "shortest idle timeout": (variant(spec__lifecycle__idleTimeout=MIN_IDLE_TIMEOUT), True),
    "a second shorter": (variant(spec__lifecycle__idleTimeout=MIN_IDLE_TIMEOUT - 1), False),
    "largest world size": (variant(spec__distributed__worldSize=MAX_WORLD_SIZE), True),
    "one rank more": (variant(spec__distributed__worldSize=MAX_WORLD_SIZE + 1), False),
    "most NCCL settings": (variant(spec__distributed__ncclSettings={f"NCCL_X{i}": "1"
                                                                     for i in range(MAX_NCCL_SETTINGS)}), True),
    "one NCCL setting more": (variant(spec__distributed__ncclSettings={f"NCCL_X{i}": "1"
                                                                        for i in range(MAX_NCCL_SETTINGS + 1)}), False),
    "longest NCCL value": (variant(spec__distributed__ncclSettings={"NCCL_DEBUG": "x" * MAX_NCCL_VALUE_LENGTH}), True),
    "an NCCL value one longer": (variant(spec__distributed__ncclSettings={
        "NCCL_DEBUG": "x" * (MAX_NCCL_VALUE_LENGTH + 1)}), False),
    "longest checkpoint hook": (variant(spec__lifecycle__checkpoint={"command": ["true"],
                                                                      "timeoutSeconds": MAX_CHECKPOINT_TIMEOUT}), True),
    "a checkpoint hook a second longer": (variant(spec__lifecycle__checkpoint={
        "command": ["true"], "timeoutSeconds": MAX_CHECKPOINT_TIMEOUT + 1}), False),
    "unknown mode": (variant(spec__mode="cluster"), False),
}


@pytest.mark.parametrize("name", list(AT_THE_BOUNDS))
def test_the_fast_path_and_the_models_agree_at_each_bound(name: str) -> None:
    manifest, readable = AT_THE_BOUNDS[name]
    assert _model_reads(manifest) == readable, "the corpus is stale: the models' bound moved"
    assert _fast_path_reads(manifest) == readable


@pytest.mark.parametrize(("path", "values"), [
    ("spec.mode", _literal(DevServerSpec.model_fields["mode"].annotation)),
    ("spec.distributed.backend", _literal(DistributedSpec.model_fields["backend"].annotation)),
    ("status.phase", _literal(DevServerStatus.model_fields["phase"].annotation)),
])
def test_the_fast_path_reads_every_value_the_models_allow(path: str, values: tuple[str, ...]) -> None:
    for value in values:
        manifest = variant(**{path.replace(".", "__"): value})
        assert _model_reads(manifest) and _fast_path_reads(manifest), value
    for status in _literal(models.Condition.model_fields["status"].annotation):
        assert _fast_path_reads(variant(status__conditions=[{"type": "Ready", "status": status}])), status


def test_what_a_manifest_leaves_out_reads_as_the_models_default_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """No mode, no distributed section, no world size: the table the fast path prints is the models' table."""
    monkeypatch.setattr(render, "_now", lambda: NOW)
    for manifest in (variant(spec__mode=DELETE, status=DELETE), variant(spec__distributed__worldSize=DELETE,
                                                                        status=DELETE)):
        model = DevServer.from_manifest(manifest)
        assert render.render([manifest], "wide", render.DEVSERVER) == render.render([model], "wide", render.DEVSERVER)


def _model_reads(manifest: dict[str, Any]) -> bool:
    try:
        DevServer.from_manifest(manifest)
    except ValueError:
        return False
    return True


def _fast_path_reads(manifest: dict[str, Any]) -> bool:
    try:
        check_readable(manifest)
    except FullClientRequired:
        return False
    return True


@pytest.mark.parametrize("name", list(READABLE))
def test_the_fast_path_reads_what_the_models_read_and_prints_the_same(name: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = READABLE[name]
    check_readable(manifest)
    model = DevServer.from_manifest(manifest)
    monkeypatch.setattr(render, "_now", lambda: NOW)
    for output in ("table", "wide", "name"):
        for namespaces in (False, True):
            assert render.render([manifest], output, render.DEVSERVER, namespaces=namespaces) == \
                   render.render([model], output, render.DEVSERVER, namespaces=namespaces), (output, namespaces)
    assert render.ready(manifest) == render.ready(model) and render.world_size(manifest) == render.world_size(model)
    assert render.expires_at(manifest) == render.expires_at(model)


@pytest.mark.parametrize("name", list(REFUSED_BY_THE_MODELS))
def test_what_the_models_refuse_goes_to_the_client(name: str) -> None:
    manifest = REFUSED_BY_THE_MODELS[name]
    assert not _model_reads(manifest), "the corpus is stale: the models read this now"
    with pytest.raises(FullClientRequired, match=r"DevServer ('|None)"):
        check_readable(manifest)


@pytest.mark.parametrize("name", list(LEFT_TO_THE_MODELS))
def test_unusual_spellings_go_to_the_client(name: str) -> None:
    assert not _fast_path_reads(LEFT_TO_THE_MODELS[name])


def test_a_manifest_renders_as_its_fields_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """``BASE`` spelled out, so that the two paths agreeing is not the renderer agreeing with itself."""
    monkeypatch.setattr(render, "_now", lambda: NOW)
    header, row = (re.split(r"\s{2,}", line) for line in render.render([BASE], "wide", render.DEVSERVER).splitlines())
    assert dict(zip(header, row, strict=True)) == {
        "NAME": "mydev", "OWNER": "alice", "FLAVOR": "cpu-small", "MODE": "distributed", "PHASE": "Starting",
        "READY": "2/3", "EXPIRES IN": "22h", "AGE": "120m", "IMAGE": "pytorch/pytorch:2.5.1", "IDLE": "59m",
        "GPU USE": "-", "COST": "-", "MESSAGE": "2/3 pods ready"}
    gpus = READABLE["GPUs read and a cost"]
    header, row = (re.split(r"\s{2,}", line) for line in render.render([gpus], "wide", render.DEVSERVER).splitlines())
    cells = dict(zip(header, row, strict=True))
    # 1.25 closed + 2 pods x 1 h (11:00 to NOW, 12:00) x 2.5 = 6.25
    assert (cells["GPU USE"], cells["COST"]) == ("0:3%,3% 1:4%,4%", "6.25 USD")
    deadline_from_spec = variant(status__expiresAt=DELETE)  # creation + 1d, before expirationTime (+2d)
    assert render.expires_at(deadline_from_spec) == datetime(2026, 5, 2, 10, 0, tzinfo=UTC)
    assert render.world_size(variant(spec__distributed=DELETE)) == 2
    assert render.ready(variant(status__replicas=DELETE, spec__distributed=DELETE)) == "2/2"


# -- kubeconfigs left to the client -------------------------------------------------------------------------

DEAD_SERVER = "https://127.0.0.1:9"


def _kubeconfig(tmp_path: Path, *, user: dict[str, Any], cluster: dict[str, Any] | None = None,
                context: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "me", "namespace": "ml", **(context or {})}}],
        "clusters": [{"name": "lab", "cluster": {"server": DEAD_SERVER, **(cluster or {})}}],
        "users": [{"name": "me", "user": user}],
    }))
    return path


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name in ("DEVSERVERS_CONTEXT", "DEVSERVERS_NAMESPACE"):
            monkeypatch.delenv(name)
    return monkeypatch


LEFT_TO_THE_CLIENT: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "exec plugin": ({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws"}}, {}, "exec"),
    "auth provider": ({"auth-provider": {"name": "oidc", "config": {}}}, {}, "auth-provider"),
    "basic auth": ({"username": "me", "password": "secret"}, {}, "password"),
    "kubeconfig proxy": ({"token": "t"}, {"proxy-url": "http://proxy:3128"}, "proxy"),
    "no verification": ({"token": "t"}, {"insecure-skip-tls-verify": True}, "insecure-skip-tls-verify"),
    "token with a line break": ({"token": "t\n"}, {}, "token"),
    "missing token file": ({"tokenFile": "nowhere"}, {}, "tokenFile"),
    "another scheme": ({"token": "t"}, {"server": "unix:///run/k8s.sock"}, "server URL"),
}


@pytest.mark.parametrize("case", list(LEFT_TO_THE_CLIENT))
def test_kubeconfigs_the_fast_path_leaves_to_the_client(case: str, tmp_path: Path,
                                                        no_proxy_settings: pytest.MonkeyPatch) -> None:
    user, cluster, reason = LEFT_TO_THE_CLIENT[case]
    with pytest.raises(FullClientRequired, match=reason):
        list_devservers(kubeconfig=_kubeconfig(tmp_path, user=user, cluster=cluster))


def test_only_a_proxy_for_the_servers_scheme_counts(tmp_path: Path, no_proxy_settings: pytest.MonkeyPatch) -> None:
    path = _kubeconfig(tmp_path, user={"token": "t"})
    no_proxy_settings.setenv("http_proxy", "http://proxy:3128")  # the server is https: the client goes direct
    with pytest.raises(FullClientRequired, match=r"GET .*Connection"):  # so the fast path tried the server
        list_devservers(kubeconfig=path)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        with no_proxy_settings.context() as patch:
            patch.setenv(name, "http://proxy:3128")
            with pytest.raises(FullClientRequired, match="a proxy"):
                list_devservers(kubeconfig=path)


def test_configuration_problems_are_left_to_the_client(tmp_path: Path, no_proxy_settings: pytest.MonkeyPatch) -> None:
    """So that the client's ConfigurationError, with its advice, is what the user reads."""
    with pytest.raises(FullClientRequired, match="no kubeconfig"):
        list_devservers(kubeconfig=tmp_path / "missing")
    path = _kubeconfig(tmp_path, user={"token": "t"})
    with pytest.raises(FullClientRequired, match="no context 'other'"):
        list_devservers(kubeconfig=path, context="other")
    no_proxy_settings.setenv("DEVSERVERS_CONTEXT", "other")
    with pytest.raises(FullClientRequired, match="no context 'other'"):
        list_devservers(kubeconfig=path)
    with pytest.raises(FullClientRequired, match="no user 'stranger'"):
        list_devservers(kubeconfig=_kubeconfig(tmp_path, user={}, context={"user": "stranger"}), context="lab")
    (tmp_path / "broken").write_text("clusters: [")
    with pytest.raises(FullClientRequired, match="not YAML"):
        list_devservers(kubeconfig=tmp_path / "broken")
    (tmp_path / "odd").write_text("contexts: 5\n")
    with pytest.raises(FullClientRequired, match="not a list"):
        list_devservers(kubeconfig=tmp_path / "odd")


# -- the answer, as read off the socket ---------------------------------------------------------------------

@pytest.mark.parametrize(("answer", "body"), [
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"items\":1}", b'{"items":1}'),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"it\r\n7\r\nems\":1}\r\n0\r\nX-Trailer: 1\r\n\r\n",
     b'{"items":1}'),
    (b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\n{}", b"{}"),
])
def test_answers_are_read_whole(answer: bytes, body: bytes) -> None:
    assert light._response_body(io.BytesIO(answer)) == body


@pytest.mark.parametrize(("answer", "reason"), [
    (b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}", "HTTP 401"),
    (b"HTTP/1.1 500 Internal Server Error\r\n\r\n", "HTTP 500"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "cut short"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n...", "gzip"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{}", "cut short"),
    (b"HTTP/1.1 200 OK\r\nContent-", "malformed"),
    (b"SSH-2.0-OpenSSH_9.6\r\n", "not an HTTP/1 answer"),
])
def test_anything_but_a_whole_200_is_left_to_the_client(answer: bytes, reason: str) -> None:
    with pytest.raises(FullClientRequired, match=reason):
        light._response_body(io.BytesIO(answer))

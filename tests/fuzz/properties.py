"""The fuzz properties, shared by ``tests/fuzz`` (a few examples, in CI) and ``bench/fuzz.py`` (thousands).

Two kinds:

* **In-process** (``InProcessServer``): the emulator's API semantics called directly (schema, CEL rules,
  defaults, validation, no HTTP), so thousands of examples take seconds. Every generated spec goes through
  the SDK's models and through the API server; they must agree in one direction (what the SDK accepts the
  server accepts), every refusal must name a field, and for every spec the SDK accepts, the StatefulSet
  and Service the operator would build must be accepted by the API server.
* **Cluster** (``ClusterFuzz``): the deployed product (``SecuredPlatform``): raw API calls that skip the
  SDK, SDK calls, and the operator running as its ServiceAccount. Each example lives in a namespace of its
  own; an accepted object must be reconciled (its status observes its generation, or it expired); every
  few examples the operator is watched over a quiet window, and a namespace that keeps drawing requests is
  a hot loop; the operator's log is searched for writes the API server refused and for failed reconciles.

A checker raises ``PropertyViolation`` when asked to (``strict``, the tests) or counts it (the benchmark).
"""

from __future__ import annotations

import collections
import copy
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from kubernetes import client
from pydantic import ValidationError

from devservers_sdk import DevServerClient, DevServerError, FlavorNotFoundError, InvalidSpecError, crds
from devservers_sdk.lifecycle import desired_stopped, plan
from devservers_sdk.localcluster.apiserver.api import ClusterAPI
from devservers_sdk.localcluster.apiserver.errors import StatusError
from devservers_sdk.manifests import OperatorConfig, build_objects
from devservers_sdk.models import DevServer, DevServerFlavor
from devservers_sdk.status import derive_status
from tests.security.secured_platform import SecuredPlatform

GROUP, VERSION = "devservers.io", "v1"
NAMESPACE = "fuzz"
RECONCILE_TIMEOUT = 60.0
HOT_LOOP_WINDOW = 2.0
HOT_LOOP_REQUESTS = 4
"""More requests than this about one namespace in a quiet window of ``HOT_LOOP_WINDOW`` seconds is a loop: at
rest the operator sends none; a missing shared claim is retried after 2, 4, 8... seconds."""

settings.register_profile("devservers-ci", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("devservers-bench", deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
# Shrinking a cluster example replays it against the live operator dozens of times: report it whole.
CLUSTER_PHASES = (Phase.explicit, Phase.reuse, Phase.generate)


class PropertyViolation(AssertionError):
    """A property does not hold for one example; the message says which and shows the example."""


@dataclass
class Stats:
    """What happened to the examples, for the tests' assertions and the benchmark's table."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    violations: list[str] = field(default_factory=list)

    def add(self, key: str, amount: int = 1) -> None:
        self.counts[key] += amount


def _shown(value: Any) -> str:
    text = json.dumps(value, default=repr, ensure_ascii=True)
    return text if len(text) < 600 else text[:600] + "..."


def names_a_field(status: int, body: dict[str, Any]) -> bool:
    """Whether a refusal says which field is wrong (a 422 cause, or a field path in the message)."""
    causes = (body.get("details") or {}).get("causes") or []
    if status == 422 and any(cause.get("field") for cause in causes):
        return True
    message = str(body.get("message", ""))
    # The type meta is named the way the real server words it: "the API version in the data", "Object 'Kind'".
    return bool(re.search(r"\b(spec|metadata)(\.[A-Za-z0-9_/\-\[\]]+)*\b|apiVersion|API version|\bkind\b|'Kind'",
                          message))


def model_verdict(model: type[DevServer] | type[DevServerFlavor], manifest: Any) -> tuple[Any, str | None]:
    """(the model, None) when the SDK accepts the manifest, else (None, the first error's location)."""
    try:
        return model.from_manifest(manifest), None
    except ValidationError as exc:
        errors = exc.errors()
        if not errors or not errors[0].get("msg"):
            raise PropertyViolation(f"the model refused {_shown(manifest)} without saying why: {exc}") from exc
        location = ".".join(str(part) for part in errors[0].get("loc", ()))
        return None, location or "(the whole object)"


# -- in process -------------------------------------------------------------------------------------------


class InProcessServer:
    """The emulator's ``ClusterAPI`` with the CRDs installed: the API server's answer without HTTP."""

    def __init__(self) -> None:
        self.api = ClusterAPI()
        crd_type = self.api.rt("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        for crd in (crds.devserver_crd(), crds.flavor_crd()):  # render() also holds the warning policy
            self.api.create(crd_type, None, crd)
        self.api.create(self.api.rt("", "v1", "namespaces"), None, {"metadata": {"name": NAMESPACE}})
        self.devservers = self.api.rt(GROUP, VERSION, "devservers")
        self.flavors = self.api.rt(GROUP, VERSION, "devserverflavors")
        self.statefulsets = self.api.rt("apps", "v1", "statefulsets")
        self.services = self.api.rt("", "v1", "services")
        self.stats = Stats()

    def _dry_run(self, rt: Any, namespace: str | None, manifest: Any) -> tuple[dict[str, Any] | None,
                                                                                 StatusError | None]:
        try:
            return self.api.create(rt, namespace, copy.deepcopy(manifest), dry_run=True,
                                   field_validation="Strict"), None
        except StatusError as exc:
            return None, exc

    def check_devserver(self, manifest: dict[str, Any], flavor: dict[str, Any] | None = None) -> None:
        """SDK and API server agree on a DevServer; a valid one builds objects the server accepts."""
        self.stats.add("examples")
        model, location = model_verdict(DevServer, manifest)
        stored, refusal = self._dry_run(self.devservers, NAMESPACE, manifest)
        self._agree("DevServer", manifest, model, location, stored, refusal)
        if model is None or stored is None:
            return
        flavor_model = DevServerFlavor.from_manifest(flavor) if flavor else DevServerFlavor.from_manifest(
            {"metadata": {"name": model.spec.flavor}})
        stored["metadata"].update({"uid": "00000000-0000-4000-8000-000000000001", "generation": 1,
                                   "creationTimestamp": "2026-01-01T00:00:00Z"})
        self._check_built(DevServer.from_manifest(stored), flavor_model)

    def check_flavor(self, manifest: dict[str, Any], devserver: dict[str, Any]) -> None:
        """SDK and API server agree on a flavor; a valid one, under a valid DevServer, builds accepted objects."""
        self.stats.add("examples")
        model, location = model_verdict(DevServerFlavor, manifest)
        stored, refusal = self._dry_run(self.flavors, None, manifest)
        self._agree("DevServerFlavor", manifest, model, location, stored, refusal)
        server = DevServer.from_manifest(devserver)
        if model is None or stored is None:
            return
        server.metadata.namespace, server.metadata.uid = NAMESPACE, "00000000-0000-4000-8000-000000000002"
        server.metadata.creation_timestamp = datetime(2026, 1, 1, tzinfo=UTC)
        self._check_built(server, DevServerFlavor.from_manifest(stored))

    def _agree(self, kind: str, manifest: Any, model: Any, location: str | None, stored: Any,
               refusal: StatusError | None) -> None:
        if refusal is not None:
            self.stats.add("refused by the API server")
            if refusal.code >= 500:
                raise PropertyViolation(f"the API server failed ({refusal.code}) on {kind} {_shown(manifest)}: "
                                        f"{refusal.message}")
            if not names_a_field(refusal.code, refusal.to_status()):
                raise PropertyViolation(f"the API server refused {kind} {_shown(manifest)} without naming a field: "
                                        f"{refusal.message}")
        if model is None:
            self.stats.add("refused by the SDK")
        if model is not None and refusal is not None:
            raise PropertyViolation(f"the SDK accepts {kind} {_shown(manifest)} but the API server refuses it: "
                                    f"{refusal.message}")
        if stored is not None:
            self.stats.add("accepted")
        if model is not None and stored is not None:
            # Defaulting on the server must not change what the SDK reads back.
            again = type(model).from_manifest(stored)
            if again.spec != model.spec:
                raise PropertyViolation(f"the API server's defaults change {kind} {_shown(manifest)}: "
                                        f"{again.spec!r} != {model.spec!r}")
        if model is None and stored is not None:
            self.stats.add("model-only refusal")  # the operator reports it in the status (cluster tests)

    def _check_built(self, server: DevServer, flavor: DevServerFlavor) -> None:
        # What one reconcile computes without I/O: the objects, the lifecycle decision, the status.
        try:
            objects = build_objects(server, flavor, OperatorConfig())
            for now in (datetime(2026, 1, 1, 0, 1, tzinfo=UTC), datetime(2030, 6, 1, tzinfo=UTC)):
                decision = plan(server, now=now, flavor_spec=flavor.spec)
                derive_status(server, statefulset=None, pods=[], now=now, expires_at=decision.expires_at,
                              desired_stopped=desired_stopped(server), lifecycle=decision)
        except Exception as exc:
            raise PropertyViolation(f"the operator's reconcile fails on a valid DevServer {server.spec!r} with flavor "
                                    f"{flavor.spec!r}: {exc!r}") from exc
        for rt, obj in ((self.statefulsets, objects.statefulset), (self.services, objects.service)):
            _, refusal = self._dry_run(rt, NAMESPACE, obj)
            if refusal is not None:
                raise PropertyViolation(f"the API server would refuse the {rt.kind} the operator builds for "
                                        f"DevServer {server.spec!r} with flavor {flavor.spec!r}: {refusal.message}")
        self.stats.add("built objects accepted")


# -- on a cluster -----------------------------------------------------------------------------------------


_REFUSED_WRITE = re.compile(r"was refused by the server|was rejected as a bad request")
_FAILED_RECONCILE = re.compile(r"Reconciling \(.*\) failed")


class ClusterFuzz:
    """Sends examples to the deployed product and watches the operator; see the module docstring.

    Args:
        platform: the running platform (its operator must run as its ServiceAccount).
        strict: raise ``PropertyViolation`` at the first violation (tests) rather than count it (benchmark).
        batch: examples between two hot-loop windows (objects stay alive until then).
    """

    def __init__(self, platform: SecuredPlatform, *, strict: bool = True, batch: int = 5) -> None:
        self.platform = platform
        self.strict = strict
        self.batch = batch
        self.stats = Stats()
        self._serial = 0
        self._live: dict[str, str] = {}  # namespace -> what was sent there
        self._flavors: list[str] = []
        self._admin = platform.api()
        self._writer = platform.api("carol")  # in devservers:admins: the owner policy lets anything through
        self._log_seen = 0

    def close(self) -> None:
        self._admin.close()
        self._writer.close()

    # one example each

    def devserver_raw(self, manifest: dict[str, Any]) -> None:
        self.stats.add("examples")
        namespace = self._namespace(f"raw DevServer {_shown(manifest)}")
        model, _ = model_verdict(DevServer, {**manifest, "metadata": {
            **(manifest.get("metadata") if isinstance(manifest.get("metadata"), dict) else {}),
            "namespace": namespace}})
        try:
            created = client.CustomObjectsApi(self._writer).create_namespaced_custom_object(
                GROUP, VERSION, namespace, "devservers", manifest)
        except client.ApiException as exc:
            self._refused("raw DevServer", manifest, exc, sdk_accepts=model is not None)
            return
        self.stats.add("accepted")
        # The operator reads what was stored (pruned, defaulted, nulls dropped), not what was sent.
        stored_model, _ = model_verdict(DevServer, created)
        if stored_model is None:
            self.stats.add("model-only refusal")  # the operator must say so in the status
        self._reconciled(namespace, created, expect_invalid=stored_model is None)
        self._after_example()

    def flavor_raw(self, manifest: dict[str, Any], devserver: dict[str, Any]) -> None:
        self.stats.add("examples")
        self._serial += 1
        name = f"fzf-{self._serial}"
        if isinstance(manifest.get("metadata"), dict) and manifest["metadata"].get("name") == "fuzzed-flavor":
            manifest = {**manifest, "metadata": {**manifest["metadata"], "name": name}}
        model, _ = model_verdict(DevServerFlavor, manifest)
        try:
            created = client.CustomObjectsApi(self._admin).create_cluster_custom_object(
                GROUP, VERSION, "devserverflavors", manifest)
        except client.ApiException as exc:
            if exc.status == 409:  # a mutation drew a valid name an earlier example already took
                self.stats.add("name taken")
                return
            self._refused("raw DevServerFlavor", manifest, exc, sdk_accepts=model is not None)
            return
        flavor = created["metadata"]["name"]
        self._flavors.append(flavor)
        stored_model, _ = model_verdict(DevServerFlavor, created)
        if stored_model is None:
            self.stats.add("model-only refusal")
        namespace = self._namespace(f"flavor {_shown(manifest)}")
        server = copy.deepcopy(devserver)
        server["spec"]["flavor"] = flavor
        made = client.CustomObjectsApi(self._writer).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "devservers", server)
        self.stats.add("accepted")
        status = self._reconciled(namespace, made, expect_invalid=False)
        said = f"DevServerFlavor '{flavor}' is invalid" in json.dumps(status)
        if stored_model is None and status is not None and not said:
            self._violation(f"DevServer on the invalid flavor {_shown(manifest)} does not say the flavor is invalid: "
                            f"{_shown(status)}")
        if stored_model is not None and said:
            self._violation(f"the operator calls the valid flavor {_shown(created)} invalid: {_shown(status)}")
        self._after_example()

    def devserver_sdk(self, arguments: dict[str, Any]) -> None:
        self.stats.add("examples")
        namespace = self._namespace(f"SDK create({_shown(arguments)})")
        sdk = DevServerClient(kubeconfig=self.platform.kubeconfigs["carol"], namespace=namespace)
        try:
            created = sdk.create(**arguments)
        except InvalidSpecError as exc:
            self.stats.add("refused by the SDK")
            if not exc.field:
                self._violation(f"create({_shown(arguments)}) refused without naming a field: {exc}")
            return
        except FlavorNotFoundError as exc:
            self.stats.add("refused by the SDK")
            if str(arguments.get("flavor")) not in str(exc):
                self._violation(f"create({_shown(arguments)}) refused a flavor without naming it: {exc}")
            return
        except DevServerError as exc:
            self._violation(f"create({_shown(arguments)}) failed with {type(exc).__name__}: {exc}")
            return
        except Exception as exc:
            self._violation(f"create({_shown(arguments)}) raised {type(exc).__name__} instead of a "
                            f"DevServerError: {exc}")
            return
        finally:
            sdk.close()
        self.stats.add("accepted")
        manifest = {"metadata": {"name": created.name}}
        self._reconciled(namespace, manifest, expect_invalid=False)
        self._after_example()

    # checks

    def _refused(self, what: str, manifest: Any, exc: client.ApiException, *, sdk_accepts: bool) -> None:
        self.stats.add("refused by the API server")
        try:
            body = json.loads(exc.body or "{}")
        except ValueError:
            body = {"message": str(exc.body)}
        if exc.status >= 500:
            self._violation(f"the API server failed ({exc.status}) on {what} {_shown(manifest)}: {body}")
        elif not names_a_field(exc.status, body):
            self._violation(f"{what} {_shown(manifest)} refused ({exc.status}) without naming a field: {body}")
        elif sdk_accepts:
            self._violation(f"the SDK accepts {what} {_shown(manifest)} but the API server refuses it: {body}")

    def _reconciled(self, namespace: str, created: dict[str, Any], *, expect_invalid: bool) -> dict[str, Any] | None:
        name = created["metadata"]["name"]
        api = client.CustomObjectsApi(self._admin)
        deadline = time.monotonic() + RECONCILE_TIMEOUT
        while time.monotonic() < deadline:
            try:
                current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "devservers", name)
            except client.ApiException as exc:
                if exc.status == 404:  # expired at once (a past expirationTime, a short timeToLive)
                    self.stats.add("reconciled")
                    return None
                raise
            status = current.get("status") or {}
            if status.get("observedGeneration") == current["metadata"].get("generation") and status.get("phase"):
                self.stats.add("reconciled")
                invalid = any(c.get("reason") == "InvalidSpec" for c in status.get("conditions") or [])
                if invalid != expect_invalid:
                    said = "marked it InvalidSpec" if invalid else "did not mark it InvalidSpec"
                    self._violation(f"the operator {said}, though the SDK's model "
                                    f"{'refuses' if expect_invalid else 'accepts'} it: {_shown(current)}")
                return dict(status)
            if not self.platform.operator_alive():
                break
            time.sleep(0.1)
        self.stats.add("not reconciled")
        self._violation(f"the operator did not reconcile {namespace}/{name} within {RECONCILE_TIMEOUT:.0f}s: "
                        f"{self._live.get(namespace)}")
        return None

    def _namespace(self, description: str) -> str:
        self._serial += 1
        name = f"fz-{self._serial}"
        client.CoreV1Api(self._admin).create_namespace({"metadata": {"name": name}})
        self._live[name] = description
        return name

    def _after_example(self) -> None:
        if len(self._live) >= self.batch:
            self.end_batch()

    def end_batch(self) -> None:
        """Watch the operator over a quiet window, check its log, then delete the batch's objects."""
        assert self.platform.cluster is not None
        cluster = self.platform.cluster
        runtime = cluster.runtime
        assert runtime is not None
        time.sleep(0.5)  # let the last example's follow-up writes (events, a pod's status) land
        before = cluster.call(lambda: dict(runtime.server.requests.by_namespace))
        time.sleep(HOT_LOOP_WINDOW)
        after = cluster.call(lambda: dict(runtime.server.requests.by_namespace))
        for namespace, description in self._live.items():
            requests = after.get(namespace, 0) - before.get(namespace, 0)
            self.stats.counts["requests in quiet windows"] += requests
            if requests > HOT_LOOP_REQUESTS:
                self.stats.add("hot loops")
                self._violation(f"hot loop: {requests} requests about namespace {namespace} in a quiet "
                                f"{HOT_LOOP_WINDOW:.0f}s window, for {description}")
        self._check_log()
        core = client.CoreV1Api(self._admin)
        for namespace in self._live:
            core.delete_namespace(namespace)
        for flavor in self._flavors:
            client.CustomObjectsApi(self._admin).delete_cluster_custom_object(GROUP, VERSION, "devserverflavors",
                                                                              flavor)
        self._live.clear()
        self._flavors.clear()

    def _check_log(self) -> None:
        log = self.platform.log()
        new, self._log_seen = log[self._log_seen:], len(log)
        refused = [line for line in new.splitlines() if _REFUSED_WRITE.search(line)]
        failed = [line for line in new.splitlines() if _FAILED_RECONCILE.search(line)]
        self.stats.add("refused writes", len(refused))
        self.stats.add("failed reconciles", len(failed))
        if not self.platform.operator_alive():
            self.stats.add("operator crashes")
            self._violation(f"the operator exited:\n{log[-3000:]}")
        if refused:
            self._violation("the operator wrote objects the API server refused:\n" + "\n".join(refused[:5]))
        if failed:
            self._violation("reconciles failed (see the operator's log):\n" + "\n".join(failed[:5]) +
                            f"\nwhile handling: {list(self._live.values())}")

    def _violation(self, message: str) -> None:
        self.stats.violations.append(message)
        if self.strict:
            raise PropertyViolation(message)

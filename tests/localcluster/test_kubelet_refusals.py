"""The kubelet when the API server refuses a pod's volume reads for a moment, as the Node authorizer does.

On a real control plane a node may read a claim, its volume, or a ConfigMap or Secret only once the Node
authorizer's graph links them to a pod bound to that node; the graph is fed by the API server's own pod informer,
so the node can see its new pod before the graph does and be refused (``no relationship found between node ...
and this object``) for a moment. That is most likely when a pod is recreated under the same name while its claim
exists (a stopped DevServer started again, a pod moved off a drained node). The emulator has no Node authorizer,
so here the node's client refuses what the real one would, a given number of times, and the tests check that the
pod starts at once when the refusal ends: the kubelet once waited 5 s between tries and said every refusal in a
FailedMount Event, and kept a refused ConfigMap watch refused for the pod's whole life.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from devservers_sdk.localcluster.apiserver.errors import StatusError
from devservers_sdk.localcluster.cluster import ClusterRuntime
from devservers_sdk.localcluster.node.apiclient import ApiClient, Credentials
from devservers_sdk.localcluster.node.kubelet import Kubelet
from tests.localcluster.test_kubelet import Env, running_ready, until

pytestmark = pytest.mark.emulator_only

NODE = "localcluster"


class NotYetInTheGraph(ApiClient):
    """A node's client whose first GETs of each named collection are refused as the Node authorizer refuses
    them before its graph has seen the pod; ``refused`` records when each refusal happened, and of what."""

    def __init__(self, credentials: Credentials, refusals: dict[str, int]) -> None:
        super().__init__(credentials, user_agent=f"kubelet/{NODE}")
        self.refusals = dict(refusals)
        self.refused: list[tuple[float, str]] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        plural = next((p for p, left in self.refusals.items() if left > 0 and f"/{p}" in path), None)
        if method == "GET" and plural is not None:
            self.refusals[plural] -= 1
            self.refused.append((time.monotonic(), path))
            raise StatusError(
                403, "Forbidden",
                f'{plural} is forbidden: User "system:node:{NODE}" cannot get resource "{plural}" in API group '
                f'"": node: no relationship found between node \'{NODE}\' and this object')
        return await super().request(method, path, **kwargs)


@pytest.fixture
def refused_node(tmp_path: Path) -> Callable[..., None]:
    """Run ``scenario(env, client)`` against the emulator and a kubelet whose client is ``NotYetInTheGraph``."""

    def run(scenario: Callable[[Env, NotYetInTheGraph], Awaitable[None]], refusals: dict[str, int]) -> None:
        async def main() -> None:
            runtime = ClusterRuntime(state_dir=tmp_path / "state", kubelet=False, controllers=False)
            await runtime.start()
            client = NotYetInTheGraph(
                Credentials(server=runtime.url, ca_pem=runtime.certificate.ca_pem, token=runtime.node_token),
                refusals)
            kubelet = Kubelet(client, state_dir=tmp_path / "node", node_name=NODE, names_client=client)
            try:
                await kubelet.start()
                await scenario(Env(runtime.api, kubelet, tmp_path), client)
            finally:
                await kubelet.stop()
                await client.close()
                await runtime.stop()

        asyncio.run(main())

    return run


def bound_claim(env: Env, name: str) -> Path:
    """A claim bound to a volume of its own, as the provisioner and the PV controller leave it; its directory."""
    directory = env.tmp / "volumes" / f"pv-{name}"
    directory.mkdir(parents=True)
    env.create("persistentvolumes", {
        "metadata": {"name": f"pv-{name}"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": str(directory)},
                 "claimRef": {"namespace": "default", "name": name}},
    }, namespace=None)
    env.create("persistentvolumeclaims", {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "volumeName": f"pv-{name}", "storageClassName": ""},
    })
    env.api.patch(env.rt("persistentvolumeclaims"), "default", name, "merge", {"status": {"phase": "Bound"}},
                  subresource="status")
    return directory


def test_a_refused_claim_is_asked_again_at_once_and_not_reported(refused_node: Callable[..., None]) -> None:
    async def scenario(env: Env, client: NotYetInTheGraph) -> None:
        home = bound_claim(env, "home-dev-0")
        (home / "kept").write_text("kept\n")
        env.run_pod("dev-0", {"name": "main", "command": ["sh", "-c", "cat /home/dev/kept; sleep 30"],
                              "volumeMounts": [{"name": "home", "mountPath": "/home/dev"}]},
                    volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "home-dev-0"}}],
                    nodeName=NODE)
        await until(running_ready(env, "dev-0"), "dev-0 Running once the claim is no longer refused")
        await until(lambda: env.log("dev-0", "main") == "kept\n", "the home's file in the log")
        times = [at for at, path in client.refused if "persistentvolumeclaims/home-dev-0" in path]
        assert len(times) == 3, client.refused
        # Asked again at once, then after 0.1 s (0.2 s, 0.4 s, ... up to 2 s); the kubelet used to wait 5 s.
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert max(gaps) < 2.5, f"a refused claim waited {max(gaps):.1f}s before the next try: {gaps}"
        # A refusal that ends within moments is the authorizer catching up, not a problem of the pod.
        mounts = [e["message"] for e in env.events("dev-0") if e["reason"] == "FailedMount"]
        assert mounts == [], mounts

    refused_node(scenario, {"persistentvolumeclaims": 3})


def test_a_refused_volume_of_a_bound_claim_is_asked_again(refused_node: Callable[..., None]) -> None:
    async def scenario(env: Env, client: NotYetInTheGraph) -> None:
        bound_claim(env, "home-dev-0")
        env.run_pod("dev-0", {"name": "main", "command": ["sleep", "30"],
                              "volumeMounts": [{"name": "home", "mountPath": "/home/dev"}]},
                    volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "home-dev-0"}}],
                    nodeName=NODE)
        await until(running_ready(env, "dev-0"), "dev-0 Running once its volume is no longer refused")
        assert [path for _, path in client.refused] == ["/api/v1/persistentvolumes/pv-home-dev-0"] * 2
        # Asked again at once, not taken for an unbound claim (looked at again every 2 s).
        gap = client.refused[1][0] - client.refused[0][0]
        assert gap < 1.0, f"a refused volume waited {gap:.1f}s before the next try"
        assert [e for e in env.events("dev-0") if e["reason"] == "FailedMount"] == []

    refused_node(scenario, {"persistentvolumes": 2})


def test_a_refused_configmap_watch_is_started_again(refused_node: Callable[..., None]) -> None:
    """A ConfigMap's watch whose first LIST was refused stayed refused: the pod never started, and the service
    account volume's ``kube-root-ca.crt`` was taken for absent, so the pod got an empty CA file."""

    async def scenario(env: Env, client: NotYetInTheGraph) -> None:
        env.create("configmaps", {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "the CA\n"}})
        env.create("configmaps", {"metadata": {"name": "settings"}, "data": {"mode": "fast"}})
        env.run_pod("dev-0", {"name": "main", "command": ["sleep", "30"],
                              "volumeMounts": [{"name": "settings", "mountPath": "/etc/settings"},
                                               {"name": "ca", "mountPath": "/var/run/ca"}]},
                    volumes=[{"name": "settings", "configMap": {"name": "settings"}},
                             {"name": "ca", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}}],
                    nodeName=NODE)
        await until(running_ready(env, "dev-0"), "dev-0 Running once its ConfigMaps are no longer refused")
        assert len(client.refused) == 2, client.refused
        worker = env.kubelet._by_name[("default", "dev-0")]
        assert Path(worker.volume_sources["settings"], "mode").read_text() == "fast"
        assert Path(worker.volume_sources["ca"], "ca.crt").read_text() == "the CA\n"

    refused_node(scenario, {"configmaps": 2})


class PodCacheNotSynced(ApiClient):
    """A node's client whose first DELETEs of a pod are answered 404, as kube-apiserver's NodeRestriction answers
    while its pod informer has not synced after a restart: it looks the pod up in that cache, not in storage."""

    def __init__(self, credentials: Credentials, not_found: int) -> None:
        super().__init__(credentials, user_agent=f"kubelet/{NODE}")
        self.not_found = not_found
        self.answered: list[str] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if method == "DELETE" and "/pods/" in path and self.not_found > 0:
            self.not_found -= 1
            self.answered.append(path)
            raise StatusError(404, "NotFound", f'pods "{path.rsplit("/", 1)[-1]}" not found')
        return await super().request(method, path, **kwargs)


def test_a_deletion_answered_not_found_for_a_pod_that_exists_is_finished(tmp_path: Path) -> None:
    """The control-plane faults run left a deleted DevServer's pod Terminating for good (and its home claim,
    held by pvc-protection): the node's final DELETE, sent just after kube-apiserver restarted, got a 404 that
    NodeRestriction's unsynced cache gave, and the kubelet took the pod for gone and forgot it."""

    async def main() -> None:
        runtime = ClusterRuntime(state_dir=tmp_path / "state", kubelet=False, controllers=False)
        await runtime.start()
        client = PodCacheNotSynced(
            Credentials(server=runtime.url, ca_pem=runtime.certificate.ca_pem, token=runtime.node_token), 2)
        kubelet = Kubelet(client, state_dir=tmp_path / "node", node_name=NODE, names_client=client)
        try:
            await kubelet.start()
            env = Env(runtime.api, kubelet, tmp_path)
            env.run_pod("dev-0", {"name": "main", "command": ["sleep", "30"]}, nodeName=NODE)
            await until(running_ready(env, "dev-0"), "dev-0 Running")
            env.delete("dev-0")
            await until(lambda: not env.exists("dev-0"), "dev-0 deleted from the API after two DELETEs answered 404")
            assert len(client.answered) == 2, client.answered
        finally:
            await kubelet.stop()
            await client.close()
            await runtime.stop()

    asyncio.run(main())


class SlowFirstList(ApiClient):
    """A node's client that holds the first LIST of one ConfigMap until the test lets it go, as a loaded API
    server does; ``held`` is set once it is held."""

    def __init__(self, credentials: Credentials, configmap: str) -> None:
        super().__init__(credentials, user_agent=f"kubelet/{NODE}")
        self.selector = f"metadata.name={configmap}"
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        params = kwargs.get("params") or {}
        first_list = not self.held.is_set() and "watch" not in params
        if method == "GET" and path.endswith("/configmaps") and params.get("fieldSelector") == self.selector \
                and first_list:
            self.held.set()
            await self.release.wait()
        return await super().request(method, path, **kwargs)


def test_another_pods_departure_does_not_stop_the_watch_a_starting_pod_waits_on(tmp_path: Path) -> None:
    """A restarted operator on the real control plane never answered: its service account volume had an empty
    ``ca.crt``. While the new pod's ConfigMap watch waited for its first LIST, the old pod left the node, and the
    kubelet stopped every watch no pod had recorded yet, this one too; it never synced, the read gave up after
    30 s, and the kubelet took ``kube-root-ca.crt`` for absent."""

    async def main() -> None:
        runtime = ClusterRuntime(state_dir=tmp_path / "state", kubelet=False, controllers=False)
        await runtime.start()
        client = SlowFirstList(
            Credentials(server=runtime.url, ca_pem=runtime.certificate.ca_pem, token=runtime.node_token),
            "kube-root-ca.crt")
        kubelet = Kubelet(client, state_dir=tmp_path / "node", node_name=NODE, names_client=client)
        try:
            await kubelet.start()
            env = Env(runtime.api, kubelet, tmp_path)
            env.create("configmaps", {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "the CA\n"}})
            env.run_pod("old-0", {"name": "main", "command": ["sleep", "30"]}, nodeName=NODE)
            await until(running_ready(env, "old-0"), "old-0 Running")
            env.run_pod("new-0", {"name": "main", "command": ["sleep", "30"],
                                  "volumeMounts": [{"name": "ca", "mountPath": "/var/run/ca"}]},
                        volumes=[{"name": "ca", "projected": {
                            "sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}}],
                        nodeName=NODE)
            await asyncio.wait_for(client.held.wait(), 60)
            env.delete("old-0")
            await until(lambda: not env.exists("old-0") and ("default", "old-0") not in kubelet._by_name,
                        "old-0 gone from the API and the node")
            client.release.set()
            await until(running_ready(env, "new-0"), "new-0 Running")
            worker = kubelet._by_name[("default", "new-0")]
            assert Path(worker.volume_sources["ca"], "ca.crt").read_text() == "the CA\n"
        finally:
            client.release.set()
            await kubelet.stop()
            await client.close()
            await runtime.stop()

    asyncio.run(main())

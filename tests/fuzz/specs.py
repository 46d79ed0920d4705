"""Hypothesis strategies for DevServer and DevServerFlavor manifests, valid and invalid, and SDK arguments.

A manifest is drawn valid first (every field the models know, each drawn from what the CRD documents),
then zero to three mutations replace a value somewhere: a wrong type, a bad quantity or duration, an
unknown field, a huge or negative number, unicode, a NUL, an empty string, a deep structure. About a third
of the examples stay valid, so the operator's reconcile of good specs is exercised as much as refusals.

``world_sizes`` is a parameter because the cluster properties cannot afford a thousand pods per example.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

GROUP_VERSION = "devservers.io/v1"
KNOWN_FLAVORS = ("cpu-small", "cpu-medium", "gpu-small")

# -- pools of values: what people type, and what they should not -------------------------------------------

GOOD_QUANTITIES = ("1", "2", "500m", "100Mi", "1Gi", "16Gi", "0.5", "1e3", "4", 8, "10Ki")
BAD_QUANTITIES = ("100GB", "-1Gi", "0", "Gi", "1.5.5", "1e400", "", " 1Gi", "1 Gi", "∞", "1Gi\u0000", "-0",
                  "99999999999999999999999Ei", "0.0000000001")
GOOD_DURATIONS = ("30m", "4h", "1h30m", "2d", "90s", "10m", "7d", "3650d")
BAD_DURATIONS = ("", "0s", "90", "4 hours", "1h-30m", "-1h", "h", "99999999999999d", "999999999d", "3651d",
                 "99999999h", "1y", "1.5h", "PT1H",
                 "1h\u0000", "\uff11h")  # the last is a full-width digit one
UNICODE = ("ålice", "🙂", "ali\u0000ce", "\u202eecila", "алиса", "a" * 64, "x" * 5000, " ", "", "a b",
           "Alice", "alice@example.com", "../../etc/passwd", "${HOME}", "$(rm -rf /)")
HUGE_NUMBERS = (2**31, 2**63 - 1, 2**63, 2**64, 10**30, -1, -(2**63), 0, 1001, 59, 60, 1000)
NCCL_KEYS = ("NCCL_DEBUG", "NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE", "NCCL_P2P_LEVEL", "NCCL_ALGO")
BAD_ENV_KEYS = ("LD_PRELOAD", "MASTER_ADDR", "PET_NNODES", "RANK", "PYTHONPATH", "nccl_debug", "NCCL_NET_PLUGIN",
                "NCCL_debug", "NCCL_", "NCCL_A B", "", "NCCL_\u00e9")
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage", "nvidia.com/gpu", "example.com/widget", "hugepages-2Mi")
BAD_RESOURCE_NAMES = ("gpu", "bad key", "requests.example.com/x", "a/b/c", "-x", "Example.com/x", "x" * 300,
                      "kubernetes.io/thing")
LABEL_KEYS = ("nvidia.com/gpu.present", "kubernetes.io/arch", "pool", "node.example.com/type")
BAD_LABEL_KEYS = ("bad key!", "a/b/c", "-x", "/x", "x/", "x" * 70, "é")
LABEL_VALUES = ("true", "amd64", "gpu-a100", "")
BAD_LABEL_VALUES = ("not ok", "-x", "x" * 64, "é")


def wrong_type() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False, width=64), st.text(max_size=12),
        st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
        st.dictionaries(st.text(max_size=5), st.integers(min_value=0, max_value=3), max_size=2),
    )


def bad_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        wrong_type(), st.sampled_from(BAD_QUANTITIES), st.sampled_from(BAD_DURATIONS), st.sampled_from(UNICODE),
        st.sampled_from(HUGE_NUMBERS), st.sampled_from(GOOD_QUANTITIES), st.sampled_from(GOOD_DURATIONS),
        st.just({"a": {"b": {"c": {"d": {"e": [1, [2, [3]]]}}}}}),
    )


# -- DevServers -------------------------------------------------------------------------------------------


def _time(offset_hours: int) -> str:
    return (datetime.now(UTC) + timedelta(hours=offset_hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def valid_devserver(draw: st.DrawFn, *, flavors: tuple[str, ...] = KNOWN_FLAVORS,
                    world_sizes: st.SearchStrategy[int] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"owner": draw(st.sampled_from(("alice", "bob", "carol", "a.b_c-1"))),
                            "flavor": draw(st.sampled_from(flavors))}
    if draw(st.booleans()):
        spec["image"] = draw(st.sampled_from(("pytorch/pytorch:2.5.1", "busybox", "ghcr.io/x/y@sha256:" + "a" * 64)))
    if draw(st.booleans()):
        spec["mode"] = "distributed"
        distributed: dict[str, Any] = {}
        if draw(st.booleans()):
            sizes = world_sizes if world_sizes is not None else st.integers(min_value=1, max_value=1000)
            distributed["worldSize"] = draw(sizes)
        if draw(st.booleans()):
            distributed["nprocsPerNode"] = draw(st.integers(min_value=1, max_value=64))
        if draw(st.booleans()):
            distributed["backend"] = draw(st.sampled_from(("nccl", "gloo")))
        if draw(st.booleans()):
            distributed["ncclSettings"] = draw(st.dictionaries(st.sampled_from(NCCL_KEYS),
                                                               st.sampled_from(("INFO", "1", "eth0", "", "ü")),
                                                               max_size=3))
        if distributed or draw(st.booleans()):
            spec["distributed"] = distributed
    elif draw(st.booleans()):
        spec["mode"] = "standalone"
    if draw(st.booleans()):
        spec["persistentHomeSize"] = draw(st.sampled_from(("1Gi", "100Gi", "500Mi", 10)))
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        spec["sharedVolumeClaimName"] = draw(st.sampled_from(("team-data", "missing-claim")))
    lifecycle: dict[str, Any] = {}
    if draw(st.booleans()):
        lifecycle["idleTimeout"] = draw(st.integers(min_value=60, max_value=10**6))
    if draw(st.booleans()):
        lifecycle["autoShutdown"] = draw(st.booleans())
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        lifecycle["expirationTime"] = _time(draw(st.sampled_from((-1, 1, 100, 24 * 365))))
    if draw(st.booleans()):
        lifecycle["timeToLive"] = draw(st.sampled_from(GOOD_DURATIONS))
    if lifecycle or draw(st.booleans()):
        spec["lifecycle"] = lifecycle
    return {"apiVersion": GROUP_VERSION, "kind": "DevServer", "metadata": {"name": "fuzzed"}, "spec": spec}


DEVSERVER_PATHS = (
    "metadata.name", "spec", "spec.owner", "spec.flavor", "spec.image", "spec.mode", "spec.distributed",
    "spec.distributed.worldSize", "spec.distributed.nprocsPerNode", "spec.distributed.backend",
    "spec.distributed.ncclSettings", "spec.persistentHomeSize", "spec.sharedVolumeClaimName", "spec.lifecycle",
    "spec.lifecycle.idleTimeout", "spec.lifecycle.autoShutdown", "spec.lifecycle.expirationTime",
    "spec.lifecycle.timeToLive", "spec.unknownField", "spec.lifecycle.ttl", "spec.distributed.worldsize",
    "apiVersion", "kind",
)


def _set(manifest: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node: Any = manifest
    for key in parents:
        child = node.get(key) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[leaf] = value


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]], paths: tuple[str, ...],
            special: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    manifest = copy.deepcopy(draw(base))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        path = draw(st.sampled_from(paths))
        value = draw(special[path] if path in special and draw(st.booleans()) else bad_values())
        _set(manifest, path, value)
    return manifest


def _nccl_settings() -> st.SearchStrategy[Any]:
    return st.dictionaries(st.sampled_from(NCCL_KEYS + BAD_ENV_KEYS),
                           st.one_of(st.sampled_from(("INFO", "x" * 5000, "a\u0000b", "")), wrong_type()),
                           max_size=4) | st.just({f"NCCL_X{i}": "1" for i in range(70)})


def devservers(*, flavors: tuple[str, ...] = KNOWN_FLAVORS,
               world_sizes: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """DevServer manifests, valid and invalid; ``metadata.name`` is ``fuzzed`` unless a mutation changed it."""
    special: dict[str, st.SearchStrategy[Any]] = {
        "metadata.name": st.sampled_from(("UPPER", "1dev", "a" * 53, "a" * 52, "dev-", "dév", "", "ok-name")),
        "spec.owner": st.sampled_from(UNICODE),
        "spec.flavor": st.sampled_from(("no-such-flavor", "GPU_Small", "x" * 254, "cpu-small")),
        "spec.image": st.sampled_from((*UNICODE, "my image", "x:1")),
        "spec.mode": st.sampled_from(("cluster", "Distributed", "distributed", "standalone", "")),
        "spec.distributed.worldSize": st.sampled_from((*HUGE_NUMBERS, "4")),
        "spec.distributed.nprocsPerNode": st.sampled_from(HUGE_NUMBERS),
        "spec.distributed.ncclSettings": _nccl_settings(),
        "spec.persistentHomeSize": st.sampled_from(BAD_QUANTITIES + GOOD_QUANTITIES),
        "spec.lifecycle.idleTimeout": st.sampled_from(HUGE_NUMBERS),
        "spec.lifecycle.timeToLive": st.sampled_from(BAD_DURATIONS + GOOD_DURATIONS),
        "spec.lifecycle.expirationTime": st.sampled_from(("next week", "2030-01-01T00:00:00", "2030-01-01",
                                                          "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z",
                                                          "2030-02-30T00:00:00Z")),
    }
    return mutated(valid_devserver(flavors=flavors, world_sizes=world_sizes), DEVSERVER_PATHS, special)


# -- flavors ----------------------------------------------------------------------------------------------


@st.composite
def valid_flavor(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        cpu = draw(st.sampled_from(("100m", "1", "2")))
        memory = draw(st.sampled_from(("64Mi", "1Gi", "2Gi")))
        resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": memory}}
        if draw(st.booleans()):
            resources["limits"] = {"cpu": cpu, "memory": memory}
        if draw(st.booleans()):
            gpus = draw(st.sampled_from(("1", "2", 8)))
            resources.setdefault("limits", {})["nvidia.com/gpu"] = gpus
            if draw(st.booleans()):
                resources["requests"]["nvidia.com/gpu"] = gpus
        spec["resources"] = resources
    if draw(st.booleans()):
        spec["nodeSelector"] = draw(st.dictionaries(st.sampled_from(LABEL_KEYS), st.sampled_from(LABEL_VALUES),
                                                    max_size=2))
    if draw(st.booleans()):
        spec["tolerations"] = draw(st.lists(st.sampled_from((
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "pool", "operator": "Equal", "value": "gpu", "effect": "NoExecute", "tolerationSeconds": 60},
            {"operator": "Exists"},
        )), max_size=2))
    if draw(st.booleans()):
        spec["description"] = draw(st.text(max_size=40))
    if draw(st.booleans()):
        spec["defaultImage"] = draw(st.sampled_from(("busybox", "pytorch/pytorch:2.5.1")))
    if draw(st.booleans()):
        spec["maxTimeToLive"] = draw(st.sampled_from(GOOD_DURATIONS))
    if draw(st.booleans()):
        spec["defaultIdleTimeout"] = draw(st.integers(min_value=60, max_value=10**6))
    return {"apiVersion": GROUP_VERSION, "kind": "DevServerFlavor", "metadata": {"name": "fuzzed-flavor"},
            "spec": spec}


FLAVOR_PATHS = (
    "metadata.name", "spec", "spec.resources", "spec.resources.requests", "spec.resources.limits",
    "spec.resources.requests.cpu", "spec.resources.limits.memory", "spec.nodeSelector", "spec.tolerations", "spec.description", "spec.defaultImage", "spec.maxTimeToLive",
    "spec.defaultIdleTimeout", "spec.unknownField",
)


def _resource_map() -> st.SearchStrategy[Any]:
    return st.dictionaries(st.sampled_from(RESOURCE_NAMES + BAD_RESOURCE_NAMES),
                           st.sampled_from(GOOD_QUANTITIES + BAD_QUANTITIES), max_size=3)


def _toleration() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({}, optional={
        "key": st.sampled_from(LABEL_KEYS + BAD_LABEL_KEYS + ("",)),
        "operator": st.sampled_from(("Exists", "Equal", "In", "")),
        "value": st.sampled_from(LABEL_VALUES + BAD_LABEL_VALUES),
        "effect": st.sampled_from(("NoSchedule", "PreferNoSchedule", "NoExecute", "Sometimes")),
        "tolerationSeconds": st.sampled_from(HUGE_NUMBERS),
    })


def flavors() -> st.SearchStrategy[dict[str, Any]]:
    """DevServerFlavor manifests, valid and invalid; ``metadata.name`` is ``fuzzed-flavor`` unless mutated."""
    special: dict[str, st.SearchStrategy[Any]] = {
        "metadata.name": st.sampled_from(("UPPER", "a" * 254, "ok.flavor", "")),
        "spec.resources.requests": _resource_map(),
        "spec.resources.limits": _resource_map(),
        "spec.resources.requests.cpu": st.sampled_from(BAD_QUANTITIES + GOOD_QUANTITIES),
        "spec.resources.limits.memory": st.sampled_from(BAD_QUANTITIES + GOOD_QUANTITIES),
        "spec.nodeSelector": st.dictionaries(st.sampled_from(LABEL_KEYS + BAD_LABEL_KEYS),
                                             st.one_of(st.sampled_from(LABEL_VALUES + BAD_LABEL_VALUES),
                                                       wrong_type()), max_size=2),
        "spec.tolerations": st.lists(st.one_of(_toleration(), wrong_type()), max_size=3),
        "spec.defaultImage": st.sampled_from(UNICODE),
        "spec.maxTimeToLive": st.sampled_from(BAD_DURATIONS + GOOD_DURATIONS),
        "spec.defaultIdleTimeout": st.sampled_from(HUGE_NUMBERS),
    }
    return mutated(valid_flavor(), FLAVOR_PATHS, special)


# -- the SDK's create() arguments -------------------------------------------------------------------------


@st.composite
def create_arguments(draw: st.DrawFn, *, flavors: tuple[str, ...] = KNOWN_FLAVORS) -> dict[str, Any]:
    """Keyword arguments for ``DevServerClient.create``, good and bad (the name is drawn too)."""
    anything = bad_values()
    arguments: dict[str, Any] = {
        "name": draw(st.sampled_from(("fuzzed", "UPPER", "1dev", "a" * 60, "")) | st.just("fuzzed")),
        "flavor": draw(st.sampled_from((*flavors, "no-such-flavor", "GPU_Small"))),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "image": st.sampled_from(("busybox", "my image", "")) | anything,
        "mode": st.sampled_from(("standalone", "distributed", "cluster")),
        "world_size": st.integers(min_value=1, max_value=3) | st.sampled_from(HUGE_NUMBERS) | anything,
        "nprocs_per_node": st.integers(min_value=1, max_value=4) | st.sampled_from(HUGE_NUMBERS),
        "backend": st.sampled_from(("gloo", "nccl", "mpi")),
        "nccl_settings": _nccl_settings(),
        "home_size": st.sampled_from(GOOD_QUANTITIES + BAD_QUANTITIES),
        "time_to_live": st.sampled_from(GOOD_DURATIONS + BAD_DURATIONS) | st.just(timedelta(hours=-1)),
        "idle_timeout": st.sampled_from((60, 59, "30m", "1s", "bad", True, -5, timedelta(minutes=5))),
        "auto_shutdown": st.booleans(),
        "expiration_time": st.sampled_from(("2030-01-01T00:00:00Z", "2030-01-01T00:00:00", "soon",
                                            datetime(2031, 1, 1, tzinfo=UTC), datetime(2031, 1, 1))),
    }
    for key, strategy in optional.items():
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            arguments[key] = draw(strategy)
    return arguments

"""Fuzzing without a cluster: the SDK's models, the API server's schema and rules, the operator's builders.

Every generated DevServer and DevServerFlavor (valid and invalid) goes through the SDK's model and through
the emulator's API semantics in-process; see ``properties.InProcessServer`` for what must hold. Cheap, so
these run a few hundred examples in CI and thousands in ``bench/fuzz.py``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings

from tests.fuzz import specs
from tests.fuzz.properties import InProcessServer

EXAMPLES = 150


def _devserver(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "devservers.io/v1", "kind": "DevServer", "metadata": {"name": "fuzzed"},
            "spec": {"owner": "alice", "flavor": "cpu-small", **spec}}


def _flavor(name: str = "fuzzed-flavor", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "devservers.io/v1", "kind": "DevServerFlavor", "metadata": {"name": name}, "spec": spec}


# What the fuzzing found once, kept as explicit examples (each was a bug; see the fixes in devservers_sdk).
@settings(max_examples=EXAMPLES)
@given(manifest=specs.devservers(), flavor=specs.valid_flavor())
@example(manifest=_devserver(lifecycle={"timeToLive": "999999999d"}), flavor=_flavor())  # reconcile overflowed
@example(manifest=_devserver(lifecycle={"idleTimeout": 10**30}), flavor=_flavor())  # reconcile overflowed
@example(manifest=_devserver(lifecycle={"expirationTime": 9}), flavor=_flavor())  # SDK read 1970-01-01
@example(manifest=_devserver(mode="distributed", distributed={"ncclSettings": {"NCCL_NET_PLUGIN": "/x.so"}}),
         flavor=_flavor())  # a setting that loads a library
def test_devservers_agree_between_sdk_and_server_and_build_accepted_objects(
        api_server: InProcessServer, manifest: dict[str, Any], flavor: dict[str, Any]) -> None:
    api_server.check_devserver(manifest, flavor)


@settings(max_examples=EXAMPLES)
@given(manifest=specs.flavors(), devserver=specs.valid_devserver())
@example(manifest=_flavor(resources={"requests": {"nvidia.com/gpu": "1e400"}}), devserver=_devserver())  # crash
@example(manifest=_flavor("UPPER"), devserver=_devserver())  # the SDK accepted a name the server refuses
@example(manifest=_flavor(resources={"limits": {"requests.example.com/x": "1", "gpu": "1"}}),
         devserver=_devserver())  # a StatefulSet the server refuses
@example(manifest=_flavor(resources={"requests": {"example.com/fpga": "1"}, "limits": {"example.com/fpga": "2"}}),
         devserver=_devserver())  # extended resources are not overcommitted
@example(manifest=_flavor(nodeSelector={"bad key!": "x"}, tolerations=[{"key": "a/b/c", "operator": "Exists"}]),
         devserver=_devserver())  # labels the server refuses
def test_flavors_agree_between_sdk_and_server_and_build_accepted_objects(
        api_server: InProcessServer, manifest: dict[str, Any], devserver: dict[str, Any]) -> None:
    api_server.check_flavor(manifest, devserver)


def test_the_examples_cover_both_outcomes() -> None:
    """A generator that only ever produced valid (or only invalid) specs would make the two properties pass
    without testing much. They run here again, on a server of this test's own: reading the module's server
    counted only what the tests shuffled before this one had run, which in a shuffled order may be nothing."""
    api_server = InProcessServer()
    test_devservers_agree_between_sdk_and_server_and_build_accepted_objects(api_server=api_server)
    test_flavors_agree_between_sdk_and_server_and_build_accepted_objects(api_server=api_server)
    counts = api_server.stats.counts
    assert counts["examples"] >= EXAMPLES
    assert counts["accepted"] > 0 and counts["refused by the SDK"] > 0 and counts["refused by the API server"] > 0
    assert counts["built objects accepted"] > 0

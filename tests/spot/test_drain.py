"""A drained node's DevServer comes back on the other node with its home; the status says Interrupted with
reason and time, counts the interruption, emits an Event, and returns to Running. Real ``kubectl drain``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import watch

from devservers_sdk.localcluster.pytest_plugin import wait_for
from tests.operator.conftest import OperatedNamespace, ready
from tests.platform_fixture import DeployedOperator

# Each test's bounded waits (a start, then a stop or a move, then Events) add up to more than the suite's 120 s
# on a loaded real plane.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


def node_of(operated: OperatedNamespace, pod_name: str) -> str:
    pod = operated.core.read_namespaced_pod(pod_name, operated.namespace)
    assert pod.spec.node_name, f"pod {pod_name} is not scheduled"
    return str(pod.spec.node_name)


class Phases(list[str]):
    """The phases a watch saw, in order, and the last status it saw (the watch may lag a GET)."""

    last: dict[str, Any]

    def caught_up(self, phase: str, interruptions: int) -> bool:
        return self.last.get("phase") == phase and self.last.get("interruptions") == interruptions


@contextmanager
def phases_seen(operated: OperatedNamespace, name: str) -> Iterator[Phases]:
    """Every phase the DevServer's status passes through while the block runs, from a watch: on the emulator
    an interruption may last less than a poll."""
    seen = Phases()
    seen.last = {}
    done = threading.Event()

    def follow() -> None:
        version = None
        while not done.is_set():  # short watches, resumed: a stopped test leaves no stream open
            stream = watch.Watch()
            for event in stream.stream(operated.custom.list_namespaced_custom_object, "devservers.io", "v1",
                                       operated.namespace, "devservers", field_selector=f"metadata.name={name}",
                                       timeout_seconds=1, resource_version=version):
                version = event["object"]["metadata"]["resourceVersion"]
                seen.last = event["object"].get("status") or {}
                phase = seen.last.get("phase")
                if phase and (not seen or seen[-1] != phase):
                    seen.append(phase)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join(timeout=10)


def operator_off(operated: OperatedNamespace, node: str) -> None:
    """Move the operator's own pod off ``node`` (cordoned while the operator restarts), so that a NoExecute taint
    of ``node`` evicts only the server. On the real control plane the operator is a Deployment's pod, placed by
    the scheduler on either node; evicted with the server's pod, it restarts after the interruption is over and
    cannot count it (as a platform team keeps its operator off spot nodes). The emulator's is a process."""
    operator = operated.operator
    if not isinstance(operator, DeployedOperator) or all(pod.spec.node_name != node for pod in operator.pods()):
        return
    operated.kubectl("cordon", node)
    try:
        operator.restart()
    finally:
        operated.kubectl("uncordon", node)
    assert all(pod.spec.node_name != node for pod in operator.pods()), "the operator's pod is still on " + node


@contextmanager
def replacements_held(operated: OperatedNamespace, *, taken: str) -> Iterator[Callable[[], None]]:
    """Cordon every node but ``taken`` (the one the test takes away) until ``release()``: the server's
    replacement pod waits, Pending, so the operator's next reconcile sees the server interrupted. On a loaded
    machine the replacement could otherwise be Ready before that reconcile, which then records the
    interruption as already over, and the phase never reads Interrupted (seen in a loaded trial run)."""
    others = [node.metadata.name for node in operated.core.list_node().items if node.metadata.name != taken]
    for node in others:
        operated.kubectl("cordon", node)
    released = False

    def release() -> None:
        nonlocal released
        for node in others:
            operated.kubectl("uncordon", node)
        released = True

    try:
        yield release
    finally:
        if not released:
            release()


def uncordon_all(operated: OperatedNamespace) -> None:
    for node in operated.core.list_node().items:
        if node.spec.unschedulable:
            operated.kubectl("uncordon", node.metadata.name)


def test_draining_the_node_under_rank_1_interrupts_then_runs_on_the_other_node(operated: OperatedNamespace) -> None:
    # The checkpoint hook runs as the pods' preStop hook: nobody tells the operator about a drain.
    hook = {"command": ["sh", "-c", "echo saved-before-drain >> $HOME/prestop.log"], "timeoutSeconds": 10}
    operated.create("spotty", mode="distributed", distributed={"worldSize": 2, "backend": "gloo"},
                persistentHomeSize="1Gi", lifecycle={"checkpoint": hook})
    operated.wait_phase("spotty", "Running", timeout=120)
    operated.exec("spotty-1", "echo kept-across-nodes > $HOME/marker")
    drained = node_of(operated, "spotty-1")
    # The scheduler may have put rank 0 there too: then both move, each with its home.
    on_drained = [pod for pod in ("spotty-0", "spotty-1") if node_of(operated, pod) == drained]
    try:
        with phases_seen(operated, "spotty") as phases, replacements_held(operated, taken=drained) as release:
            result = operated.kubectl("drain", drained, "--ignore-daemonsets", "--delete-emptydir-data",
                                  "--timeout=90s", "--pod-selector=devservers.io/name=spotty", check=False)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "pod/spotty-1 evicted" in result.stdout + result.stderr, result.stdout + result.stderr
            assert operated.core.read_node(drained).spec.unschedulable, "kubectl drain cordons the node first"
            wait_for(lambda: "Interrupted" in phases, timeout=120, message="the Interrupted phase, the replacement pod held Pending")
            release()

            back = operated.wait_phase("spotty", "Running", timeout=120,
                                   check=lambda s: (s.get("status") or {}).get("interruptions") == 1)
            wait_for(lambda: phases.caught_up("Running", 1), timeout=60, message="the watch to see Running again")
        assert "Interrupted" in phases, phases
        assert phases.index("Interrupted") < len(phases) - 1, f"Running again after Interrupted: {phases}"
        status = back["status"]
        last: dict[str, Any] = status["lastInterruption"]
        assert last["reason"] == "Evicted" and last["time"] and last["pods"] == on_drained, last
        assert last["nodes"] == [drained], last
        recovered = next(c for c in status["conditions"] if c["type"] == "Interrupted")
        assert (recovered["status"], recovered["reason"]) == ("False", "Recovered")
        pods = {pod.metadata.name: pod for pod in operated.pods("spotty")}
        assert all(ready(pod) for pod in pods.values()), pods
        assert node_of(operated, "spotty-1") != drained
        assert operated.exec("spotty-1", "cat $HOME/marker").strip() == "kept-across-nodes"
        for pod in ("spotty-0", "spotty-1"):  # the preStop hook ran once on each drained pod, never elsewhere
            expected = ["saved-before-drain"] if pod in on_drained else []
            assert operated.exec(pod, "cat $HOME/prestop.log 2>/dev/null || true").splitlines() == expected, pod
        wait_for(lambda: {"Interrupted", "InterruptionRecovered"} <= set(operated.event_reasons("spotty")),
                 timeout=60, message="the Interrupted and InterruptionRecovered Events")
        interrupted_event = next(e for e in operated.events("spotty") if e.reason == "Interrupted")
        assert interrupted_event.type == "Warning" and "spotty-1" in interrupted_event.message
    finally:
        uncordon_all(operated)


SPOT_INTERRUPTION_TAINT = "aws-node-termination-handler/spot-itn"


def test_a_spot_interruption_taint_moves_the_server_with_its_home(operated: OperatedNamespace) -> None:
    """The AWS Node Termination Handler's taint, as NoExecute: the taint-eviction controller deletes the pod."""
    operated.create("tainted", persistentHomeSize="1Gi")
    operated.wait_phase("tainted", "Running", timeout=120)
    operated.exec("tainted-0", "echo still-here > $HOME/marker")
    reclaimed = node_of(operated, "tainted-0")
    operator_off(operated, reclaimed)
    try:
        with phases_seen(operated, "tainted") as phases, replacements_held(operated, taken=reclaimed) as release:
            operated.kubectl("taint", "node", reclaimed, f"{SPOT_INTERRUPTION_TAINT}=true:NoExecute")
            wait_for(lambda: "Interrupted" in phases, timeout=120, message="the Interrupted phase, the replacement pod held Pending")
            release()
            back = operated.wait_phase("tainted", "Running", timeout=120,
                                   check=lambda s: (s.get("status") or {}).get("interruptions") == 1)
            wait_for(lambda: phases.caught_up("Running", 1), timeout=60, message="the watch to see Running again")
        assert "Interrupted" in phases, phases
        last = back["status"]["lastInterruption"]
        assert (last["reason"], last["pods"], last["nodes"]) == ("NodeTainted", ["tainted-0"], [reclaimed]), last
        assert node_of(operated, "tainted-0") != reclaimed
        assert operated.exec("tainted-0", "cat $HOME/marker").strip() == "still-here"
    finally:
        operated.kubectl("taint", "node", reclaimed, f"{SPOT_INTERRUPTION_TAINT}-", check=False)
        uncordon_all(operated)

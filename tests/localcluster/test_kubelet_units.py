"""The kubelet's pure parts: env expansion, field references, images, back-off, logs, hosts file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from devservers_sdk.localcluster.node import sandbox
from devservers_sdk.localcluster.node.apiclient import Informer
from devservers_sdk.localcluster.node.kubelet import (
    Backoff,
    _pump,
    _service_env,
    expand,
    field_ref_value,
    image_pull_error,
    normalize_image,
    resource_field_value,
)
from devservers_sdk.localcluster.pytest_plugin import wait_for


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "x", "B": "y"}
    assert expand("$(A)-$(B)", env.get) == "x-y"
    assert expand("$(MISSING)", env.get) == "$(MISSING)"
    assert expand("$$(A)", env.get) == "$(A)"
    assert expand("$$", env.get) == "$"
    assert expand("cost $5 $(A", env.get) == "cost $5 $(A"
    assert expand("$A", env.get) == "$A"
    assert expand("", env.get) == ""


def test_field_refs() -> None:
    pod = {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "u-1",
            "labels": {"app": "web", "tier": "a b"},
            "annotations": {"note": "hi"},
        },
        "spec": {"nodeName": "n", "serviceAccountName": "sa"},
        "status": {"podIP": "127.2.0.9", "podIPs": [{"ip": "127.2.0.9"}], "hostIP": "127.0.0.1"},
    }
    assert field_ref_value(pod, "metadata.name") == "p"
    assert field_ref_value(pod, "metadata.namespace") == "ns"
    assert field_ref_value(pod, "metadata.uid") == "u-1"
    assert field_ref_value(pod, "metadata.labels['app']") == "web"
    assert field_ref_value(pod, "metadata.annotations['note']") == "hi"
    assert field_ref_value(pod, "metadata.labels") == 'app="web"\ntier="a b"'
    assert field_ref_value(pod, "spec.nodeName") == "n"
    assert field_ref_value(pod, "spec.serviceAccountName") == "sa"
    assert field_ref_value(pod, "status.podIP") == "127.2.0.9"
    assert field_ref_value(pod, "status.podIPs") == "127.2.0.9"
    assert field_ref_value(pod, "status.hostIP") == "127.0.0.1"
    with pytest.raises(ValueError):
        field_ref_value(pod, "spec.nonsense")


def test_resource_field_refs() -> None:
    pod = {
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "250m"}},
                }
            ]
        }
    }
    allocatable = {"cpu": "8", "memory": "16Gi"}
    assert resource_field_value(pod, "c", {"resource": "limits.cpu"}, allocatable) == "1"
    assert resource_field_value(pod, "c", {"resource": "limits.cpu", "divisor": "1m"}, allocatable) == "500"
    assert resource_field_value(pod, "c", {"resource": "requests.cpu", "divisor": "1m"}, allocatable) == "250"
    assert (
        resource_field_value(pod, "c", {"resource": "limits.memory", "divisor": "1Mi"}, allocatable) == "1024"
    )
    assert resource_field_value(pod, "c", {"resource": "requests.memory"}, allocatable) == "0"
    no_limits = {"spec": {"containers": [{"name": "c"}]}}
    assert resource_field_value(no_limits, "c", {"resource": "limits.cpu"}, allocatable) == "8"


def test_images() -> None:
    assert normalize_image("busybox") == ("docker.io", "library/busybox", ":latest")
    assert normalize_image("python:3.11") == ("docker.io", "library/python", ":3.11")
    assert normalize_image("ghcr.io/org/img:v1") == ("ghcr.io", "org/img", ":v1")
    assert normalize_image("localhost:5000/img") == ("localhost:5000", "img", ":latest")
    assert normalize_image("img@sha256:abc") == ("docker.io", "library/img", "@sha256:abc")
    assert image_pull_error("busybox") is None
    assert image_pull_error("registry.example.com/x:1") is None
    message = image_pull_error("registry.invalid/team/app:1")
    assert message is not None
    assert message.startswith('failed to pull and unpack image "registry.invalid/team/app:1"')
    assert "no such host" in message
    assert image_pull_error("registry.invalid:5000/app") is not None


def test_backoff_is_immediate_then_doubles_to_the_cap() -> None:
    backoff = Backoff(initial=1, cap=8)
    at = 0.0
    delays = []
    for _ in range(7):
        delay = backoff.next_delay(at)
        delays.append(delay)
        at += delay + 0.1
    assert delays == [0, 1, 2, 4, 8, 8, 8]
    # After running fine for longer than twice the cap, a crash restarts at once again.
    assert backoff.next_delay(at + 100) == 0


def test_service_links() -> None:
    env = _service_env(
        [
            {
                "metadata": {"name": "my-db"},
                "spec": {
                    "clusterIP": "10.96.0.20",
                    "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
                },
            },
            {"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}},
        ]
    )
    assert env["MY_DB_SERVICE_HOST"] == "10.96.0.20"
    assert env["MY_DB_SERVICE_PORT"] == "5432"
    assert env["MY_DB_SERVICE_PORT_PG"] == "5432"
    assert env["MY_DB_PORT"] == "tcp://10.96.0.20:5432"
    assert env["MY_DB_PORT_5432_TCP_ADDR"] == "10.96.0.20"
    assert not any(k.startswith("HEADLESS") for k in env)


def test_cri_log_records(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(b"one\ntw")
        reader.feed_data(b"o\n" + b"x" * 20000 + b"\ntail")
        reader.feed_eof()
        with open(tmp_path / "0.log", "ab") as f:
            await _pump(reader, b"stdout", f)
        return (tmp_path / "0.log").read_bytes()

    records = asyncio.run(scenario()).splitlines()
    parsed = [r.split(b" ", 3) for r in records]
    assert [(p[1], p[2], p[3][:5]) for p in parsed] == [
        (b"stdout", b"F", b"one"),
        (b"stdout", b"F", b"two"),
        (b"stdout", b"P", b"xxxxx"),
        (b"stdout", b"F", b"xxxxx"),
        (b"stdout", b"F", b"tail"),
    ]
    assert len(parsed[2][3]) == 16384 and len(parsed[3][3]) == 20000 - 16384
    stamp = parsed[0][0].decode()
    assert len(stamp) == len("2026-01-01T00:00:00.123456789Z") and stamp.endswith("Z")


def test_hosts_file_lines_and_in_place_update(tmp_path: Path) -> None:
    pods = [
        {
            "metadata": {"name": "mydev-0", "namespace": "ns"},
            "spec": {"hostname": "mydev-0", "subdomain": "mydev"},
            "status": {"podIP": "127.2.0.5"},
        },
        {"metadata": {"name": "plain", "namespace": "ns"}, "spec": {}, "status": {"podIP": "127.2.0.6"}},
        {"metadata": {"name": "no-ip", "namespace": "ns"}, "spec": {}, "status": {}},
    ]
    text = sandbox.render_hosts(pods, [("ns", "web", "127.2.0.6")])
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "127.2.0.5\tmydev-0.mydev.ns.svc.cluster.local mydev-0.mydev.ns.svc mydev-0.mydev mydev-0" in lines
    assert "127.2.0.6\tplain" in lines
    assert "127.2.0.6\tweb.ns.svc.cluster.local web.ns.svc web.ns" in lines
    assert "no-ip" not in text
    path = tmp_path / "hosts"
    sandbox.write_in_place(path, text)
    inode = os.stat(path).st_ino
    sandbox.write_in_place(path, "short\n")
    assert path.read_text() == "short\n"
    assert os.stat(path).st_ino == inode


def test_project_files_replaces_the_set(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    sandbox.project_files(target, {"a": (b"1", 0o644), "sub/b": (b"2", 0o600)})
    assert (target / "a").read_text() == "1"
    assert oct((target / "sub" / "b").stat().st_mode & 0o777) == oct(0o600)
    sandbox.project_files(target, {"a": (b"3", 0o644)})
    assert (target / "a").read_text() == "3"
    assert not (target / "sub").exists()


def test_ip_allocator_cycles_before_reusing() -> None:
    ips = sandbox.PodIPAllocator("127.9.0.0/29")
    first = [ips.allocate() for _ in range(3)]
    assert first == ["127.9.0.1", "127.9.0.2", "127.9.0.3"]
    ips.release("127.9.0.1")
    assert ips.allocate() == "127.9.0.4"


def test_a_process_group_whose_pid_now_names_another_process_is_not_killed() -> None:
    """A pod's deletion kills its exec sessions' groups: never a newer process that was given the same pid."""
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        started = sandbox.process_start_time(other.pid)
        assert started is not None
        recorded_before_reuse = sandbox.ProcessGroup(other.pid, started - 1)
        assert recorded_before_reuse.ended()
        recorded_before_reuse.kill()
        assert other.poll() is None
        assert sandbox.pid_alive(other.pid)

        ours = sandbox.ProcessGroup.led_by(other.pid)
        assert not ours.ended()
        ours.kill()
        assert other.wait(timeout=10) == -9
    finally:
        other.kill()
        other.wait()


def test_a_process_group_is_killed_after_its_leader_has_gone() -> None:
    """``kubectl exec -- sh -c 'job &'``: the job stays in the session's group after sh exits, and dies with the pod."""
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!"], stdout=subprocess.PIPE, start_new_session=True)
    group = sandbox.ProcessGroup.led_by(leader.pid)
    assert leader.stdout is not None
    job = int(leader.stdout.readline())
    leader.stdout.close()
    assert leader.wait(timeout=10) == 0
    try:
        assert os.getpgid(job) == group.pgid
        assert not group.ended()
        group.kill()
        wait_for(lambda: not sandbox.pid_alive(job), timeout=10, interval=0.02,
                 message=f"pid {job} of the exec's group to die")
        # Its zombie holds the group until init reaps it.
        wait_for(group.ended, timeout=10, interval=0.02, message="the exec's group to end")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(job, 9)


def test_a_relist_reports_an_object_made_again_under_its_name_as_deleted_and_added() -> None:
    """A StatefulSet's pod deleted and made again while the watch was down: the node must stop the old one."""

    def pod(uid: str, version: str) -> dict[str, object]:
        return {"metadata": {"namespace": "ns", "name": "w-0", "uid": uid, "resourceVersion": version}}

    class Listing:
        def __init__(self) -> None:
            self.items = [pod("old", "1")]

        async def get(self, path: str, **params: str) -> dict[str, object]:
            return {"metadata": {"resourceVersion": "9"}, "items": self.items}

    listing = Listing()
    informer = Informer(listing, "/api/v1/pods")  # type: ignore[arg-type]
    seen: list[tuple[str, object]] = []
    informer.add_handler(lambda kind, obj: seen.append((kind, obj["metadata"]["uid"])))

    async def relist_twice() -> None:
        await informer._relist()
        listing.items = [pod("new", "7")]
        await informer._relist()

    asyncio.run(relist_twice())
    assert seen == [("ADDED", "old"), ("DELETED", "old"), ("ADDED", "new")]
    assert informer.get("ns", "w-0") == pod("new", "7")

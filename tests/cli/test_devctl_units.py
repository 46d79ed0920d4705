"""Pure parts of devctl, without a cluster: render() in every format, times, progress lines, kubeconfig merging."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from devservers_cli import kubeconfig, render
from devservers_cli.local_platform import sample_flavors
from devservers_cli.progress import WaitProgress

from devservers_sdk.client import DevServerDescription, EventSummary, PodSummary
from devservers_sdk.models import DevServer, DevServerFlavor


def devserver(name: str = "mydev", **status: object) -> DevServer:
    """A 2-rank DevServer created five minutes ago, with a 4h lifetime."""
    created = datetime.now(UTC) - timedelta(minutes=5)
    return DevServer.from_manifest({
        "metadata": {"name": name, "namespace": "alice", "creationTimestamp": created.isoformat()},
        "spec": {"owner": "alice", "flavor": "cpu-small", "mode": "distributed",
                 "distributed": {"worldSize": 2, "backend": "gloo", "ncclSettings": {"NCCL_DEBUG": "INFO"}},
                 "lifecycle": {"timeToLive": "4h", "idleTimeout": 3600}},
        "status": status,
    })


def test_table_aligns_and_trims() -> None:
    assert render.table(["A", "LONGER"], [["x", "1"], ["wide-cell", ""]]) == "A           LONGER\nx           1\nwide-cell"
    assert render.table(["A"], []) == ""


def test_render_devservers_in_every_format() -> None:
    servers = [devserver("one", phase="Running", readyReplicas=2, replicas=2), devserver("two")]
    table = render.render(servers, "table", render.DEVSERVER).splitlines()
    assert table[0].split() == ["NAME", "OWNER", "FLAVOR", "MODE", "PHASE", "READY", "EXPIRES", "IN", "AGE"]
    assert table[1].split() == ["one", "alice", "cpu-small", "distributed", "Running", "2/2", "3h54m", "5m"]
    assert table[2].split()[4:6] == ["Pending", "0/2"]
    assert "MESSAGE" in render.render(servers, "wide", render.DEVSERVER)
    assert render.render(servers, "table", render.DEVSERVER, namespaces=True).splitlines()[1].startswith("alice")

    listed = json.loads(render.render(servers, "json", render.DEVSERVER))
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["one", "two"]
    assert yaml.safe_load(render.render(servers, "yaml", render.DEVSERVER)) == listed
    one = json.loads(render.render(servers[:1], "json", render.DEVSERVER, single=True))
    assert one["apiVersion"] == "devservers.io/v1" and one["kind"] == "DevServer"
    assert one["spec"]["distributed"]["worldSize"] == 2 and one["status"]["readyReplicas"] == 2
    assert DevServer.from_manifest(one).name == "one"  # json output reads back as a DevServer
    assert render.render(servers, "name", render.DEVSERVER) == \
        "devserver.devservers.io/one\ndevserver.devservers.io/two"
    assert render.render([], "table", render.DEVSERVER) == ""
    with pytest.raises(ValueError, match="unknown output format"):
        render.render(servers, "xml", render.DEVSERVER)


def test_render_flavors() -> None:
    flavors = [DevServerFlavor.from_manifest(m) for m in sample_flavors()]
    assert [f.name for f in flavors] == ["cpu-large", "cpu-medium", "cpu-small", "gpu-large", "gpu-medium",
                                         "gpu-small-spot", "gpu-small"]
    wide = render.render(flavors, "wide", render.FLAVOR).splitlines()
    gpu = next(line for line in wide if line.startswith("gpu-small ")).split()
    assert gpu[1:6] == ["8", "32Gi", "1", "on-demand", "nvidia.com/gpu.present=true"] and gpu[6:8] == ["24h", "1h"]
    spot = next(line for line in wide if line.startswith("gpu-small-spot ")).split()
    assert spot[4] == "spot"
    header, *rows = [re.split(r"\s{2,}", line) for line in render.render(flavors, "table", render.FLAVOR).splitlines()]
    prices = {row[0]: row[header.index("COST/HOUR")] for row in rows}
    assert prices["gpu-small"] == "1.21 USD" and prices["gpu-large"] == "32.77 USD", prices


def test_describe_text_has_every_section() -> None:
    now = datetime.now(UTC)
    server = devserver(phase="Running", readyReplicas=2, replicas=2, message="2/2 pods ready",
                       lastActivityTime=(now - timedelta(minutes=3)).isoformat(), lastActivitySource="shell",
                       conditions=[{"type": "Ready", "status": "True", "reason": "PodsReady",
                                    "message": "2/2 pods ready", "lastTransitionTime": now.isoformat()}])
    description = DevServerDescription(
        devserver=server,
        pods=[PodSummary(name="mydev-0", rank=0, phase="Running", ready=True, restarts=1, node="n1",
                         ip="10.0.0.1", started_at=now)],
        events=[EventSummary(type="Normal", reason="Scheduled", message="assigned", object="Pod/mydev-0", count=2,
                             last_seen=now)])
    text = render.render([description], "table", render.DESCRIPTION)
    for fragment in ("Name:          mydev", "Mode:          distributed: 2 ranks, 1 process per rank, backend gloo",
                     "NCCL settings: NCCL_DEBUG=INFO", "Phase:    Running", "Idle timeout:    1h, auto shutdown on",
                     "(idle for 3m", "via shell)", "PodsReady", "mydev-0   0      Running   yes     1",
                     "assigned (x2)"):
        assert fragment in text, f"{fragment!r} not in:\n{text}"
    document = json.loads(render.render([description], "json", render.DESCRIPTION, single=True))
    assert document["pods"][0]["name"] == "mydev-0" and document["events"][0]["last_seen"].endswith("Z")


def test_describe_caps_the_expiry_by_the_flavor_before_the_operator_reports_it() -> None:
    server = devserver()  # timeToLive 4h, created five minutes ago, no status yet
    capped = render.render([DevServerDescription(devserver=server, max_time_to_live="1h")], "table", render.DESCRIPTION)
    line = next(line for line in capped.splitlines() if "Expires at" in line)
    assert "(in 54m" in line or "(in 55m" in line, line
    uncapped = render.render([DevServerDescription(devserver=server)], "table", render.DESCRIPTION)
    line = next(line for line in uncapped.splitlines() if "Expires at" in line)
    assert "(in 3h5" in line, line


def test_progress_prints_one_line_per_change_without_a_terminal() -> None:
    stream = io.StringIO()
    with WaitProgress(stream, live=False) as progress:
        progress(devserver())
        progress(devserver())  # unchanged: not repeated
        progress(devserver(phase="Starting", conditions=[{"type": "Ready", "status": "False", "reason": "Wait",
                                                          "message": "0/2 pods ready"}]))
        progress(devserver(phase="Running", readyReplicas=2, replicas=2))
    lines = stream.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["Pending", "Starting", "Running"]
    assert lines[1].endswith("0/2 ready   0/2 pods ready")


def test_progress_redraws_one_line_on_a_terminal() -> None:
    stream = io.StringIO()
    with WaitProgress(stream, live=True) as progress:
        progress(devserver(phase="Starting"))
        progress(devserver(phase="Running", readyReplicas=2, replicas=2))
    text = stream.getvalue()
    assert "\r\x1b[K" in text
    kept = [line.split("\r\x1b[K")[-1] for line in text.split("\n") if line.strip()]
    assert "Starting" in kept[0] and "Running" in kept[-1] and text.endswith("\n")


def test_kubeconfig_merge_and_remove(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "work",
                                    "contexts": [{"name": "work", "context": {"cluster": "c", "user": "u"}}],
                                    "clusters": [{"name": "c", "cluster": {"server": "https://c"}}],
                                    "users": [{"name": "u", "user": {"token": "t"}}]}))
    source: dict[str, Any] = {"current-context": "devservers-local",
              "contexts": [{"name": "devservers-local", "context": {"cluster": "devservers-local", "user": "adm"}}],
              "clusters": [{"name": "devservers-local", "cluster": {"server": "https://127.0.0.1:1"}}],
              "users": [{"name": "adm", "user": {"token": "new"}}]}
    entries, previous = kubeconfig.merge(path, source)
    assert previous == "work" and kubeconfig.selected(path) == "devservers-local"
    assert path.stat().st_mode & 0o777 == 0o600
    source["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:2"  # a second `up`, on another port
    assert kubeconfig.merge(path, source) == (entries, None)
    document = yaml.safe_load(path.read_text())
    assert [c["cluster"]["server"] for c in document["clusters"]] == ["https://c", "https://127.0.0.1:2"]
    assert kubeconfig.remove(path, entries, previous) == "work"
    assert yaml.safe_load(path.read_text())["contexts"] == [{"name": "work", "context": {"cluster": "c", "user": "u"}}]


def test_sample_flavors_are_the_examples() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "flavors"
    assert sample_flavors() == [yaml.safe_load(p.read_text()) for p in sorted(examples.glob("*.yaml"))]

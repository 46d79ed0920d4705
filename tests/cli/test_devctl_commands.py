"""Every devctl command against the platform (local cluster + operator), in process and as a subprocess.

Each test runs twice through the ``devctl`` fixture: Click's ``CliRunner`` and a real ``python -m
devservers_cli`` process. Exit codes are part of the contract: 0 success, 1 an ``Error: ...`` line, 2 a
usage error, and ``shell -- cmd`` exits with the command's own code.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from devctl_support import Devctl, Outcome, running

from devservers_sdk.localcluster.pytest_plugin import wait_for

pytestmark = pytest.mark.slow

PROGRESS_LINE = re.compile(r"^\[\s*\d+\.\ds\] (\w+)\s+(\d+)/(\d+) ready", re.MULTILINE)
LIFECYCLE_ORDER = ["Pending", "Starting", "Running"]


def assert_error(outcome: Outcome, *fragments: str) -> None:
    """Exit 1 with one ``Error: ...`` line, last on stderr (after any progress), and no traceback."""
    assert outcome.exit_code == 1, str(outcome)
    lines = outcome.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert errors == lines[-1:] and lines[-1].startswith("Error: "), str(outcome)
    for fragment in fragments:
        assert fragment in lines[-1], str(outcome)
    assert "Traceback" not in outcome.output


def assert_usage_error(outcome: Outcome, fragment: str) -> None:
    assert outcome.exit_code == 2, str(outcome)
    assert "Usage: devctl" in outcome.stderr and fragment in outcome.stderr, str(outcome)
    assert "Traceback" not in outcome.output


# -- flavors ---------------------------------------------------------------------------------------------

def test_flavors_in_every_format(devctl: Devctl) -> None:
    table = devctl("flavors")
    assert table.exit_code == 0, str(table)
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "CPU", "MEMORY", "GPUS", "CAPACITY", "NODE", "SELECTOR", "COST/HOUR",
                              "DESCRIPTION"]
    by_name = {row.split()[0]: row.split() for row in rows}
    assert set(by_name) >= {"cpu-small", "cpu-medium", "cpu-large", "gpu-small", "gpu-large"}
    assert by_name["cpu-small"][1:4] == ["1", "2Gi", "0"]
    assert by_name["gpu-small"][3:6] == ["1", "on-demand", "nvidia.com/gpu.present=true"]
    assert by_name["gpu-small-spot"][3:6] == ["1", "spot", "nvidia.com/gpu.present=true"]

    wide = devctl("flavors", "-o", "wide")
    assert "MAX TTL" in wide.stdout and "IDLE TIMEOUT" in wide.stdout and "pytorch/pytorch" in wide.stdout

    as_json = json.loads(devctl("flavors", "-o", "json").stdout)
    as_yaml = yaml.safe_load(devctl("flavors", "-o", "yaml").stdout)
    assert as_json == as_yaml
    assert as_json["kind"] == "List"
    small = next(item for item in as_json["items"] if item["metadata"]["name"] == "cpu-small")
    assert small["kind"] == "DevServerFlavor" and small["spec"]["resources"]["requests"]["cpu"] == "1"

    names = devctl("flavors", "-o", "name").stdout.splitlines()
    assert "devserverflavor.devservers.io/cpu-small" in names


# -- create ----------------------------------------------------------------------------------------------

def test_create_wait_shows_progress_then_how_to_connect(devctl: Devctl) -> None:
    outcome = running(devctl, "mydev", "--time", "1h", "--idle-timeout", "30m")
    assert "DevServer 'mydev' created in namespace" in outcome.stdout
    assert "DevServer 'mydev' is Running (1/1 ready). Connect with: devctl shell mydev" in outcome.stdout
    phases = [match[0] for match in PROGRESS_LINE.findall(outcome.stderr)]
    assert phases and phases[-1] == "Running", outcome.stderr
    assert "1/1 ready" in outcome.stderr.splitlines()[-1]
    known = [phase for phase in phases if phase in LIFECYCLE_ORDER]
    assert known == sorted(known, key=LIFECYCLE_ORDER.index), f"phases out of order: {phases}"

    spec = json.loads(devctl("describe", "mydev", "-o", "json").stdout)["devserver"]["spec"]
    assert spec["lifecycle"] == {"autoShutdown": True, "idleTimeout": 1800, "timeToLive": "1h"}
    assert spec["flavor"] == "cpu-small" and spec["mode"] == "standalone"


def test_create_without_wait_says_what_to_do_next(devctl: Devctl) -> None:
    # Within cpu-small's 7-day maximum lifetime, which a later deadline would be refused for.
    expires = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    outcome = devctl("create", "later", "--flavor", "cpu-small", "--home-size", "1Gi", "--no-auto-shutdown",
                     "--expires", expires)
    assert outcome.exit_code == 0, str(outcome)
    assert "Wait for it with: devctl wait later; then connect with: devctl shell later" in outcome.stdout
    spec = json.loads(devctl("describe", "later", "-o", "json").stdout)["devserver"]["spec"]
    assert spec["persistentHomeSize"] == "1Gi"
    assert spec["lifecycle"]["autoShutdown"] is False
    assert spec["lifecycle"]["expirationTime"] == expires


def test_create_output_name_and_yaml_for_scripts(devctl: Devctl) -> None:
    named = devctl("create", "scripted", "--flavor", "cpu-small", "-o", "name")
    assert named.exit_code == 0, str(named)
    assert named.stdout == "devserver.devservers.io/scripted\n"
    created = yaml.safe_load(devctl("create", "scripted2", "--flavor", "cpu-small", "-o", "yaml").stdout)
    assert created["kind"] == "DevServer" and created["metadata"]["name"] == "scripted2"


def test_create_refuses_what_cannot_work(devctl: Devctl) -> None:
    assert_error(devctl("create", "x", "--flavor", "no-such-flavor"),
                 "Flavor 'no-such-flavor' does not exist", "cpu-small", "devctl flavors")
    assert_error(devctl("create", "Not_A_Name", "--flavor", "cpu-small"), "Not_A_Name")
    assert_usage_error(devctl("create", "x", "--flavor", "cpu-small", "--time", "4 hours"), "4 hours")
    assert_usage_error(devctl("create", "x", "--flavor", "cpu-small", "--idle-timeout", "90"), "90s")
    assert_usage_error(devctl("create", "x"), "Missing option '--flavor'")
    # The SDK's refusal (DevServerSpec.from_options), word for word as the magics and the widgets give it.
    assert_error(devctl("create", "x", "--flavor", "cpu-small", "--world-size", "2"),
                 "Error: DevServer 'x' is standalone, but world size (spec.distributed.worldSize) only applies to a "
                 "distributed DevServer: make it distributed, or leave it out. To make it distributed: devctl create x "
                 "--flavor cpu-small --distributed --world-size 2")
    assert_usage_error(devctl("create", "x", "--flavor", "cpu-small", "--distributed", "--nccl", "oops"),
                       "KEY=VALUE")
    assert_usage_error(devctl("create", "x", "--flavor", "cpu-small", "--wait", "--timeout", "soon"), "soon")
    # The seed example's expirationTime: it had passed before the server would exist.
    assert_error(devctl("create", "x", "--flavor", "cpu-small", "--expires", "2024-01-15T18:00:00Z"),
                 "expirationTime 2024-01-15T18:00:00Z is in the past; use timeToLive or a future time")
    assert devctl("list", "-o", "name").stdout == "", "nothing may have been created"

    assert devctl("create", "taken", "--flavor", "cpu-small").exit_code == 0
    assert_error(devctl("create", "taken", "--flavor", "cpu-small"), "'taken'", "already exists",
                 "devctl delete taken")


def test_create_wait_times_out_with_the_reason(devctl: Devctl) -> None:
    # gpu-small selects GPU nodes; the local node has none, so the pod is never scheduled.
    outcome = devctl("create", "nogpu", "--flavor", "gpu-small", "--wait", "--timeout", "3s")
    assert_error(outcome, "DevServer 'nogpu' did not reach phase Running within 3s", "It stays Pending",
                 "unless you delete it", "devctl describe nogpu")
    phases = {match[0] for match in PROGRESS_LINE.findall(outcome.stderr)}
    assert phases and "Running" not in phases, outcome.stderr

    # Once the scheduler has looked, the reason is in words, with the local cluster's remedy.
    reason = "no node offers nvidia.com/gpu; the local cluster has none (start it with --gpus N)"

    def degraded() -> dict[str, str]:
        server = json.loads(devctl("list", "-o", "json").stdout)["items"][0]
        return next((c for c in server.get("status", {}).get("conditions", []) if c["type"] == "Degraded"), {})

    wait_for(lambda: degraded().get("status") == "True", timeout=60, message="Degraded True with the reason")
    assert degraded()["reason"] == "NoNodeOffersResource" and reason in degraded()["message"], degraded()
    waited = devctl("wait", "nogpu", "--timeout", "2s")
    assert_error(waited, reason, "It stays Pending", "delete it with: devctl delete nogpu")
    assert reason in devctl("describe", "nogpu").stdout


# -- list ------------------------------------------------------------------------------------------------

def test_list_in_every_format(devctl: Devctl, namespace: str) -> None:
    empty = devctl("list")
    assert empty.exit_code == 0 and empty.stdout == ""
    assert f"No DevServers found in namespace '{namespace}'" in empty.stderr
    assert devctl("create", "alpha", "--flavor", "cpu-small", "--time", "2h").exit_code == 0

    header, row = devctl("list").stdout.splitlines()
    assert re.split(r"\s{2,}", header) == ["NAME", "OWNER", "FLAVOR", "MODE", "PHASE", "READY", "EXPIRES IN", "AGE"]
    cells = re.split(r"\s{2,}", row)
    assert cells[0] == "alpha" and cells[2:4] == ["cpu-small", "standalone"]
    assert re.fullmatch(r"(1h59m|2h)", cells[6]), row
    owner = cells[1]

    wide = devctl("list", "-o", "wide").stdout
    assert "IMAGE" in wide.splitlines()[0] and "MESSAGE" in wide.splitlines()[0]

    everywhere = devctl("list", "-A").stdout.splitlines()
    assert everywhere[0].startswith("NAMESPACE")
    assert any(line.split()[:2] == [namespace, "alpha"] for line in everywhere[1:])

    as_json = json.loads(devctl("list", "-o", "json").stdout)
    as_yaml = yaml.safe_load(devctl("list", "-o", "yaml").stdout)
    assert as_yaml["kind"] == "List" and [i["metadata"]["name"] for i in as_yaml["items"]] == ["alpha"]
    assert as_json["kind"] == "List" and [i["metadata"]["name"] for i in as_json["items"]] == ["alpha"]
    assert as_json["items"][0]["apiVersion"] == "devservers.io/v1" and as_json["items"][0]["kind"] == "DevServer"
    assert devctl("list", "-o", "name").stdout == "devserver.devservers.io/alpha\n"

    assert devctl("list", "--owner", owner, "-o", "name").stdout == "devserver.devservers.io/alpha\n"
    nobody = devctl("list", "--owner", "nobody")
    assert nobody.exit_code == 0 and nobody.stdout == "" and "owned by 'nobody'" in nobody.stderr
    assert_usage_error(devctl("list", "-o", "xml"), "xml")


# -- describe --------------------------------------------------------------------------------------------

def test_describe_shows_spec_status_pods_and_events(devctl: Devctl, namespace: str) -> None:
    running(devctl, "desc", "--time", "3h")
    text = devctl("describe", "desc")
    assert text.exit_code == 0, str(text)
    for fragment in ("Name:          desc", f"Namespace:     {namespace}", "Flavor:        cpu-small",
                     "Mode:          standalone (1 pod)", "Phase:    Running", "Ready:    1/1",
                     "Time to live:    3h", "Conditions:", "Pods:", "desc-0", "Events:"):
        assert fragment in text.stdout, f"{fragment!r} missing from:\n{text.stdout}"
    assert re.search(r"Expires at:\s+\S+Z \(in 2h5\dm\)", text.stdout), text.stdout

    document = json.loads(devctl("describe", "desc", "-o", "json").stdout)
    assert document["devserver"]["metadata"]["name"] == "desc"
    assert document["devserver"]["status"]["phase"] == "Running"
    assert [(pod["name"], pod["rank"], pod["phase"]) for pod in document["pods"]] == [("desc-0", 0, "Running")]
    assert any(event["reason"] == "Scheduled" for event in document["events"])
    assert yaml.safe_load(devctl("describe", "desc", "-o", "yaml").stdout)["pods"][0]["name"] == "desc-0"
    assert devctl("describe", "desc", "-o", "name").stdout == "devserver.devservers.io/desc\n"


# -- shell and logs --------------------------------------------------------------------------------------

def test_shell_command_streams_output_and_exits_with_its_code(devctl: Devctl) -> None:
    running(devctl, "box")
    node = devctl("shell", "box", "--", "python", "-c", "import platform; print(platform.node())")
    assert node.exit_code == 0 and node.stdout == "box-0\n", str(node)

    failed = devctl("shell", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert failed.exit_code == 3, str(failed)
    assert failed.stdout == "out\n" and failed.stderr == "err\n"

    piped = devctl("shell", "box", "--", "tr", "a-z", "A-Z", input="hello\n")
    assert piped.exit_code == 0 and piped.stdout == "HELLO\n", str(piped)

    missing = devctl("shell", "box", "--", "no-such-command-here")
    assert missing.exit_code == 127, str(missing)
    assert "no-such-command-here" in missing.stderr and "Traceback" not in missing.output

    assert_error(devctl("shell", "box", "--rank", "3", "--", "true"), "DevServer 'box'", "rank 3")
    assert_error(devctl("shell", "ghost", "--", "true"), "DevServer 'ghost' not found", "devctl list")


def test_distributed_ranks_are_reachable_one_by_one(devctl: Devctl) -> None:
    outcome = running(devctl, "ddp", "--distributed", "--world-size", "2", "--nprocs-per-node", "1",
                      "--backend", "gloo", "--nccl", "NCCL_DEBUG=INFO")
    assert "2/2 ready" in outcome.stdout and "devctl shell ddp [--rank 0..1]" in outcome.stdout
    rank1 = devctl("shell", "ddp", "--rank", "1", "--", "sh", "-c", "hostname; echo $PET_NODE_RANK $NCCL_DEBUG")
    assert rank1.exit_code == 0 and rank1.stdout.split() == ["ddp-1", "1", "INFO"], str(rank1)
    _, row = devctl("list").stdout.splitlines()
    assert re.split(r"\s{2,}", row)[3:6] == ["distributed", "Running", "2/2"]
    text = devctl("describe", "ddp").stdout
    assert "distributed: 2 ranks, 1 process per rank, backend gloo" in text and "NCCL_DEBUG=INFO" in text
    assert devctl("logs", "ddp", "--rank", "1", "--tail", "5").exit_code == 0


def test_logs(devctl: Devctl) -> None:
    running(devctl, "talk")
    outcome = devctl("logs", "talk", "--tail", "10")
    assert outcome.exit_code == 0, str(outcome)
    # The keep-alive command prints nothing: say so, rather than leave an empty screen.
    assert outcome.stdout == "" and "No output yet from container 'devserver' of pod 'talk-0'." in outcome.stderr
    assert_error(devctl("logs", "ghost"), "DevServer 'ghost' not found")
    assert_usage_error(devctl("logs", "talk", "--tail", "-1"), "--tail")


# -- lifecycle -------------------------------------------------------------------------------------------

def test_no_home_is_explicit_and_never_called_kept(devctl: Devctl) -> None:
    running(devctl, "scratch", "--no-home")
    assert json.loads(devctl("describe", "scratch", "-o", "json").stdout)["devserver"]["spec"][
        "persistentHomeSize"] == "0"
    stopped = devctl("stop", "scratch", "--wait", "--timeout", "1m")
    assert stopped.exit_code == 0, str(stopped)
    assert "its home volumes are kept" not in stopped.stdout
    assert "DevServer 'scratch' is stopped; it has no persistent home (persistentHomeSize 0), so files in its " \
           "home are lost." in stopped.stdout
    assert "none (persistentHomeSize 0" in devctl("describe", "scratch").stdout
    assert_usage_error(devctl("create", "both", "--flavor", "cpu-small", "--no-home", "--home-size", "1Gi"),
                       "--no-home and --home-size")


def test_lifetimes_follow_one_rule_and_say_the_flavors_maximum(devctl: Devctl) -> None:
    """Issue 14: over the cap is refused naming the maximum; the default is said at create; what extend
    prints is what describe then shows; --time 0 suggests nothing that is refused in turn."""
    assert_error(devctl("create", "long", "--flavor", "cpu-small", "--time", "8d"),
                 "asks for a lifetime of 8d, more than the maximum lifetime of its flavor 'cpu-small' (7d)")
    zero = devctl("create", "zero", "--flavor", "cpu-small", "--time", "0")
    assert_usage_error(zero, "longer than zero")
    assert "0s" not in zero.stderr
    plain = devctl("create", "plain", "--flavor", "cpu-small")
    assert plain.exit_code == 0, str(plain)
    assert re.search(r"it expires at \S+Z \(in (6d23h|7d)\), the maximum lifetime of flavor 'cpu-small' \(7d\), "
                     r"as none was asked for", plain.stdout), str(plain)
    assert_error(devctl("extend", "plain", "--time", "10d"), "maximum lifetime of its flavor 'cpu-small' (7d")

    assert devctl("create", "brief", "--flavor", "cpu-small", "--time", "1h").exit_code == 0
    extended = devctl("extend", "brief", "--time", "2h")
    printed = re.search(r"DevServer 'brief' now expires at (\S+Z) \(in 2h(59m)?\)\.", extended.stdout)
    assert extended.exit_code == 0 and printed, str(extended)

    def described() -> str | None:
        status = json.loads(devctl("describe", "brief", "-o", "json").stdout)["devserver"].get("status") or {}
        return status.get("expiresAt")

    wait_for(lambda: described() == printed.group(1), timeout=60,
             message=f"the operator's expiresAt to be the {printed.group(1)} extend printed")


def test_stop_start_extend_update_wait(devctl: Devctl) -> None:
    running(devctl, "cycle", "--time", "1h")  # no --home-size, as in the README: a home is kept anyway
    wrote = devctl("shell", "cycle", "--", "sh", "-c", "echo precious > $HOME/notes.txt")
    assert wrote.exit_code == 0, str(wrote)
    assert re.search(r"Home volume:\s+10Gi per rank \(default\)", devctl("describe", "cycle").stdout)

    stopped = devctl("stop", "cycle", "--wait", "--timeout", "1m")
    assert stopped.exit_code == 0, str(stopped)
    assert "DevServer 'cycle' is stopped; its home volumes are kept. Start it again with: devctl start cycle" \
        in stopped.stdout
    assert re.split(r"\s{2,}", devctl("list").stdout.splitlines()[1])[4:6] == ["Stopped", "0/0"]
    assert_error(devctl("wait", "cycle", "--timeout", "1s"), "did not reach phase Running within 1s")

    started = devctl("start", "cycle", "--wait", "--timeout", "1m")
    assert started.exit_code == 0 and "is Running (1/1 ready)" in started.stdout, str(started)
    kept = devctl("shell", "cycle", "--", "cat", "notes.txt")
    assert (kept.exit_code, kept.stdout) == (0, "precious\n"), str(kept)

    before = datetime.now(UTC)
    extended = devctl("extend", "cycle", "--time", "2h")
    assert extended.exit_code == 0 and "DevServer 'cycle' now expires at" in extended.stdout, str(extended)
    lifecycle = json.loads(devctl("describe", "cycle", "-o", "json").stdout)["devserver"]["spec"]["lifecycle"]
    expiry = datetime.fromisoformat(lifecycle["expirationTime"].replace("Z", "+00:00"))
    assert before + timedelta(hours=2, minutes=58) <= expiry <= datetime.now(UTC) + timedelta(hours=3, seconds=5)
    assert "timeToLive" not in lifecycle
    assert_usage_error(devctl("extend", "cycle"), "--time")
    assert_usage_error(devctl("extend", "cycle", "--time", "forever"), "forever")

    updated = devctl("update", "cycle", "--image", "example.org/torch:2")
    assert updated.exit_code == 0 and "updated: image example.org/torch:2" in updated.stdout, str(updated)
    assert json.loads(devctl("describe", "cycle", "-o", "json").stdout)["devserver"]["spec"]["image"] == \
        "example.org/torch:2"
    waited = devctl("wait", "cycle", "--for", "running", "--timeout", "1m")
    assert waited.exit_code == 0 and "DevServer 'cycle' is Running" in waited.stdout, str(waited)
    assert_usage_error(devctl("update", "cycle"), "Nothing to update")
    assert_error(devctl("update", "cycle", "--flavor", "huge"), "Flavor 'huge' does not exist")
    assert_usage_error(devctl("wait", "cycle", "--for", "Asleep"), "Asleep")


def test_delete(devctl: Devctl) -> None:
    running(devctl, "doomed")
    assert devctl("create", "doomed2", "--flavor", "cpu-small").exit_code == 0
    # Not a terminal: no question asked (as kubectl), and --yes is accepted all the same.
    gone = devctl("delete", "doomed", "doomed2", "--wait", "--timeout", "1m")
    assert gone.exit_code == 0, str(gone)
    assert gone.stdout.splitlines() == ["DevServer 'doomed' deleted and its volumes are gone.",
                                        "DevServer 'doomed2' deleted and its volumes are gone."]
    assert_error(devctl("describe", "doomed"), "DevServer 'doomed' not found")
    assert_error(devctl("delete", "doomed", "--yes"), "DevServer 'doomed' not found", "devctl list")
    assert devctl("wait", "doomed", "--for", "deleted").exit_code == 0
    assert_usage_error(devctl("delete"), "Missing argument 'NAME...'")

    # As kubectl: a missing name is reported, the others are deleted all the same, and the exit is 1.
    assert devctl("create", "doomed3", "--flavor", "cpu-small").exit_code == 0
    partly = devctl("delete", "ghost", "doomed3")
    assert_error(partly, "DevServer 'ghost' not found")
    assert partly.stdout == "DevServer 'doomed3' deleted.\n"


# -- errors ----------------------------------------------------------------------------------------------

def test_errors_are_one_line_unless_debug(devctl: Devctl, namespace: str) -> None:
    assert_error(devctl("describe", "nope"), f"DevServer 'nope' not found in namespace '{namespace}'",
                 "List yours with: devctl list")
    debug = devctl("--debug", "describe", "nope")
    assert debug.exit_code == 1 and "Traceback" in debug.stderr, str(debug)
    assert debug.stderr.strip().splitlines()[-1].startswith("Error: DevServer 'nope' not found")
    assert_usage_error(devctl("no-such-command"), "No such command")
    assert_usage_error(devctl("describe"), "Missing argument 'NAME'")


def test_namespace_flag_anywhere_on_the_line(devctl: Devctl, namespace: str) -> None:
    assert devctl("create", "here", "--flavor", "cpu-small").exit_code == 0
    assert devctl("-n", namespace, "list", "-o", "name").stdout == "devserver.devservers.io/here\n"
    assert devctl("list", "-n", namespace, "-o", "name").stdout == "devserver.devservers.io/here\n"
    other = devctl("list", "-n", "default", "-o", "name")
    assert "devserver.devservers.io/here" not in other.stdout
    assert_error(devctl("--context", "nowhere", "list"), "Context 'nowhere' is not in the kubeconfig")

"""The pure parts of the notebook front end: form values to create arguments, rows, countdowns, tables.

No cluster and no widgets: DevServers are built from manifests with the SDK's models.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from devservers_magics.forms import (
    CreateValues,
    create_arguments,
    flavor_label,
    flavor_options,
    progress_text,
    row_view,
    shows_distributed_fields,
    widget_message,
)
from devservers_magics.magics import notebook_message
from devservers_magics.summaries import age_text, expires_at, ready_text, remaining_text, span_text
from devservers_magics.tables import DevServerTable, FlavorTable, devserver_text, html_table, text_table

from devservers_sdk.errors import InvalidSpecError
from devservers_sdk.models import DevServer, DevServerFlavor, DevServerSpec

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def server(
    name: str = "mydev",
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    created: datetime = NOW - timedelta(minutes=5),
) -> DevServer:
    return DevServer.from_manifest(
        {
            "apiVersion": "devservers.io/v1",
            "kind": "DevServer",
            "metadata": {
                "name": name,
                "namespace": "ml",
                "creationTimestamp": created.isoformat(),
                "annotations": annotations or {},
            },
            "spec": {"owner": "alice", "flavor": "cpu-small", **(spec or {})},
            "status": status or {},
        }
    )


def flavor(name: str, **resources: str) -> DevServerFlavor:
    return DevServerFlavor.from_manifest(
        {
            "apiVersion": "devservers.io/v1",
            "kind": "DevServerFlavor",
            "metadata": {"name": name},
            "spec": {
                "resources": {
                    "requests": {k: v for k, v in resources.items() if k != "gpu"},
                    "limits": {"nvidia.com/gpu": resources["gpu"]} if "gpu" in resources else {},
                },
                "description": f"{name} <b>bold</b>",
                "maxTimeToLive": "24h",
                "defaultIdleTimeout": 5400,
            },
        }
    )


# -- create form values ------------------------------------------------------------------------------


def test_blank_fields_are_left_to_the_flavor() -> None:
    name, kwargs = create_arguments(CreateValues(name=" mydev ", flavor="cpu-small"))
    assert name == "mydev"
    assert kwargs == {"flavor": "cpu-small", "mode": "standalone", "wait": True}


def test_every_field_given() -> None:
    values = CreateValues(
        name="ddp",
        flavor="gpu-small",
        image=" pytorch/pytorch:2.5.1 ",
        mode="distributed",
        world_size=4,
        nprocs_per_node=8,
        time_to_live="4h",
        idle_timeout="30m",
        wait=False,
    )
    assert create_arguments(values) == (
        "ddp",
        {
            "flavor": "gpu-small",
            "mode": "distributed",
            "wait": False,
            "image": "pytorch/pytorch:2.5.1",
            "world_size": 4,
            "nprocs_per_node": 8,
            "time_to_live": "4h",
            "idle_timeout": "30m",
        },
    )


def test_distributed_values_in_standalone_mode_are_refused_by_the_sdk() -> None:
    # The same input as `devctl create x --flavor cpu-small --world-size 2`: passed on, not dropped, and the
    # SDK refuses it in the words devctl and the magics use.
    name, kwargs = create_arguments(CreateValues(name="x", flavor="cpu-small", world_size=2))
    assert kwargs == {"flavor": "cpu-small", "mode": "standalone", "wait": True, "world_size": 2}
    options = {key: value for key, value in kwargs.items() if key != "wait"}
    with pytest.raises(InvalidSpecError) as refused:
        DevServerSpec.from_options(owner="alice", name=name, **options)
    assert refused.value.field == "spec.mode"
    assert refused.value.render("magic") == (
        "DevServer 'x' is standalone, but world size (spec.distributed.worldSize) only applies to a distributed "
        "DevServer: make it distributed, or leave it out. To make it distributed: %devserver create x --flavor "
        "cpu-small --distributed --world-size 2")


def test_idle_timeout_in_digits_is_seconds() -> None:
    assert (
        create_arguments(CreateValues(name="a", flavor="f", idle_timeout="3600"))[1]["idle_timeout"] == 3600
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (CreateValues(name="  ", flavor="f"), "Give the DevServer a name"),
        (CreateValues(name="a", flavor=None), "Choose a flavor"),
        (CreateValues(name="a", flavor="f", mode="cluster"), "standalone or distributed"),
    ],
)
def test_missing_values_are_explained(values: CreateValues, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_arguments(values)


def test_distributed_fields_show_for_distributed_mode_only() -> None:
    assert shows_distributed_fields("distributed")
    assert not shows_distributed_fields("standalone")


def test_flavor_labels_show_each_pods_resources() -> None:
    flavors = [
        flavor("cpu-small", cpu="1", memory="2Gi"),
        flavor("gpu-small", cpu="8", memory="32Gi", gpu="1"),
        flavor("bare"),
    ]
    assert flavor_options(flavors) == [
        ("cpu-small: 1 CPU, 2Gi", "cpu-small"),
        ("gpu-small: 8 CPU, 32Gi, 1 GPU", "gpu-small"),
        ("bare", "bare"),
    ]
    assert flavor_label(flavors[1]) == "gpu-small: 8 CPU, 32Gi, 1 GPU"


# -- rows, countdowns ----------------------------------------------------------------------------------


def test_row_of_a_running_server() -> None:
    expiry = NOW + timedelta(hours=3, minutes=59, seconds=30)
    row = row_view(
        server(
            status={"phase": "Running", "readyReplicas": 1, "replicas": 1, "expiresAt": expiry.isoformat()}
        ),
        now=NOW,
    )
    assert (row.name, row.phase, row.ready, row.expires_in, row.toggle) == (
        "mydev",
        "Running",
        "1/1",
        "3h 59m",
        "Stop",
    )
    assert row.deadline == expiry


def test_row_before_the_operator_reports() -> None:
    row = row_view(
        server(
            spec={"mode": "distributed", "distributed": {"worldSize": 3}, "lifecycle": {"timeToLive": "1h"}}
        ),
        now=NOW,
    )
    assert (row.phase, row.ready, row.expires_in) == ("-", "0/3", "55m")


@pytest.mark.parametrize(
    ("annotations", "phase", "toggle"),
    [
        ({}, "Running", "Stop"),
        ({"devservers.io/desired-state": "Stopped"}, "Running", "Start"),  # asked to stop, not yet stopped
        ({"devservers.io/desired-state": " stopped"}, "Running", "Start"),  # as the operator reads it
        ({}, "Stopped", "Start"),  # stopped by the operator (idle)
        ({"devservers.io/desired-state": "Running"}, "Stopped", "Stop"),  # asked to start, not yet running
    ],
)
def test_stop_or_start_follows_what_was_asked(annotations: dict[str, str], phase: str, toggle: str) -> None:
    assert row_view(server(annotations=annotations, status={"phase": phase}), now=NOW).toggle == toggle


def test_expiry_is_the_earlier_of_expiration_time_and_time_to_live() -> None:
    created = NOW - timedelta(hours=1)
    both = server(
        created=created,
        spec={"lifecycle": {"timeToLive": "2h", "expirationTime": (NOW + timedelta(minutes=30)).isoformat()}},
    )
    assert expires_at(both) == NOW + timedelta(minutes=30)
    ttl_only = server(created=created, spec={"lifecycle": {"timeToLive": "2h"}})
    assert expires_at(ttl_only) == NOW + timedelta(hours=1)
    assert expires_at(server()) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (60, "1m"),
        (3599, "59m 59s"),
        (3600, "1h"),
        (5400, "1h 30m"),
        (90061, "1d 1h"),
    ],
)
def test_spans(seconds: int, text: str) -> None:
    assert span_text(timedelta(seconds=seconds)) == text


def test_countdown_texts() -> None:
    assert remaining_text(None, now=NOW) == "never"
    assert remaining_text(NOW - timedelta(seconds=1), now=NOW) == "expired"
    assert remaining_text(NOW + timedelta(days=2, hours=5), now=NOW) == "2d 5h"
    assert age_text(server(created=NOW - timedelta(hours=3, minutes=20)), now=NOW) == "3h"


def test_ready_counts_the_world_size_until_the_operator_says() -> None:
    assert ready_text(server()) == "0/1"
    assert ready_text(server(status={"readyReplicas": 1, "replicas": 2})) == "1/2"


def test_progress_line() -> None:
    assert (
        progress_text(server(status={"phase": "Starting", "message": "pulling image"}))
        == "mydev: Starting, 0/1 ready (pulling image)"
    )


# -- tables ------------------------------------------------------------------------------------------


def test_text_tables_align_columns() -> None:
    assert text_table(["name", "phase"], [["a", "Running"], ["longer-name", "-"]]).splitlines() == [
        "NAME         PHASE",
        "a            Running",
        "longer-name  -",
    ]


def test_html_tables_escape_everything() -> None:
    rendered = html_table(["<h>"], [["<script>alert(1)</script>"]], caption="a & b")
    assert "<script>" not in rendered and "&lt;script&gt;" in rendered and "a &amp; b" in rendered


def test_flavor_table_is_a_list_of_flavors_with_both_reprs() -> None:
    table = FlavorTable([flavor("cpu-small", cpu="1", memory="2Gi")])
    assert isinstance(table, list) and table[0].name == "cpu-small"
    assert str(table).splitlines()[1].split()[:6] == ["cpu-small", "1", "2Gi", "0", "24h", "1h"]
    assert "<td" in table._repr_html_() and "&lt;b&gt;bold" in table._repr_html_()


def test_empty_tables_say_what_to_do() -> None:
    assert "%devserver create" in str(DevServerTable())
    assert "%devserver create" in DevServerTable()._repr_html_()


def test_devserver_text_names_the_essentials() -> None:
    text = devserver_text(
        server(spec={"lifecycle": {"idleTimeout": 1800}}, status={"phase": "Running", "readyReplicas": 1})
    )
    assert text.splitlines()[0] == "DevServer mydev"
    assert "phase         Running" in text and "idle timeout  30m" in text


def test_devctl_hints_become_magic_hints() -> None:
    assert (
        notebook_message("Start it with: devctl start mydev. Or run devctl local up")
        == "Start it with: %devserver start mydev. Or run devctl local up"
    )


def test_progress_before_the_operator_answers() -> None:
    assert progress_text(server()) == "mydev: created, waiting for the operator"


def test_a_stale_status_expiry_gives_way_to_the_new_spec() -> None:
    """Right after extend the spec has moved on; the operator's expiresAt is for an older generation."""
    old, new = NOW + timedelta(hours=1), NOW + timedelta(hours=2)
    manifest_status = {"expiresAt": old.isoformat(), "observedGeneration": 1}
    current = server(status=manifest_status, spec={"lifecycle": {"expirationTime": new.isoformat()}})
    current.metadata.generation = 1
    assert expires_at(current) == old  # the operator's word (it may have capped the spec's deadline)
    current.metadata.generation = 2
    assert expires_at(current) == new


def test_flavor_names_and_headers_do_not_wrap_but_descriptions_do() -> None:
    rendered = FlavorTable([flavor("cpu-large", cpu="8", memory="32Gi")])._repr_html_()
    assert '<th style="padding:2px 10px;text-align:left;border-bottom:1px solid #ddd;white-space:nowrap">max ttl' \
        in rendered
    assert "white-space:nowrap\">cpu-large</td>" in rendered
    description_cell = rendered.split("<td")[-1]
    assert "nowrap" not in description_cell


@pytest.mark.parametrize(
    ("sdk", "widget"),
    [
        ("DevServer 'a' expires at 2026-12-07T02:07:39Z; extend it with: devctl extend a --by 2h",
         "DevServer 'a' expires at 2026-12-07T02:07:39Z; extend it with: press Extend on the row of a"),
        ("Its home volumes are kept; resume it with: devctl start a",
         "Its home volumes are kept; resume it with: press Start on the row of a"),
        ("DevServer 'a' not found in namespace 'ns'. List yours with: devctl list",
         "DevServer 'a' not found in namespace 'ns'. List yours with: press Refresh"),
        ("See what is happening with: devctl describe a", "See what is happening with: %devserver describe a"),
        ("pick another flavor with: devctl update a --flavor ..., or delete it with: devctl delete a",
         "pick another flavor with: %devserver update a --flavor ..., or delete it with: press Delete on the row of a"),
        ("Start a local cluster with: devctl local up", "Start a local cluster with: devctl local up"),
        ("Extend it with: devctl extend a --time 2h.", "Extend it with: press Extend on the row of a."),
        ("Delete it with: devctl delete a-1 --yes, then", "Delete it with: press Delete on the row of a-1, then"),
        ("See them all with devctl list -A to compare", "See them all with press Refresh to compare"),
    ],
)
def test_widget_messages_name_the_widgets_own_buttons(sdk: str, widget: str) -> None:
    assert widget_message(sdk) == widget

"""A minimal kopf operator used to prove that kopf runs against the local cluster.

Each handler appends one line to the file named by ``KOPF_PROBE_LOG``, so the test can check that
every handler ran exactly once (no lost events, no duplicate deliveries, no retry loops).
"""

from __future__ import annotations

import os
from typing import Any

import kopf

GROUP, VERSION, PLURAL = "probe.devservers.io", "v1", "gadgets"


def _record(line: str) -> None:
    with open(os.environ["KOPF_PROBE_LOG"], "a") as handle:
        handle.write(line + "\n")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = 100  # keep the test's event list about the resource, not the operator
    settings.watching.server_timeout = 30


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(name: str, spec: dict[str, Any], patch: kopf.Patch, **_: Any) -> dict[str, Any]:
    _record(f"create {name} size={spec.get('size')}")
    patch.status["seen"] = spec.get("size")
    return {"message": "created"}


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def updated(name: str, old: Any, new: Any, **_: Any) -> None:
    _record(f"update {name} {old.get('size')}->{new.get('size')}")


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(name: str, **_: Any) -> None:
    _record(f"delete {name}")


@kopf.timer(GROUP, VERSION, PLURAL, interval=3600, initial_delay=0.5)
def ticked(name: str, **_: Any) -> None:
    _record(f"timer {name}")

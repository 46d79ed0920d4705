"""``DevServerClient.check_create``: every problem of a create form at once, before anything is sent (the
dashboard shows each beside its field)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from devservers_sdk import DevServerClient


@pytest.fixture
def offline(tmp_path: Any) -> DevServerClient:
    """A client whose cluster does not exist: anything it sends fails, so a clean answer proves it sent nothing."""
    document = {"apiVersion": "v1", "kind": "Config", "current-context": "nowhere",
                "clusters": [{"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "me", "user": {"token": "x"}}],
                "contexts": [{"name": "nowhere", "context": {"cluster": "nowhere", "user": "me", "namespace": "ns"}}]}
    path = tmp_path / "offline"
    path.write_text(yaml.safe_dump(document))
    return DevServerClient(kubeconfig=str(path), owner="alice")


def test_check_create_names_every_problem_without_sending(offline: DevServerClient) -> None:
    problems = offline.check_create("My_Dev", flavor="cpu-small", time_to_live="8", idle_timeout="10s",
                                    home_size="lots", mode="distributed", world_size=0,
                                    nccl_settings={"LD_PRELOAD": "/x.so"})
    fields = [problem.field for problem in problems]
    assert fields[:3] == ["metadata.name", "spec.lifecycle.timeToLive", "spec.lifecycle.idleTimeout"], fields
    assert set(fields[3:]) == {"spec.persistentHomeSize", "spec.distributed.worldSize",
                               "spec.distributed.ncclSettings.LD_PRELOAD"}, fields
    messages = {problem.field: str(problem) for problem in problems}
    assert "add a unit" in messages["spec.lifecycle.timeToLive"]
    assert "at least 1m" in messages["spec.lifecycle.idleTimeout"]
    assert "greater than or equal to 1" in messages["spec.distributed.worldSize"]
    assert offline.check_create("my-dev", flavor="cpu-small", time_to_live="4h", home_size="10Gi") == []

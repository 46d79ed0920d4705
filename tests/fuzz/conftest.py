"""Fuzz fixtures: the in-process API server, and the deployed product on a cluster of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.fuzz.properties import ClusterFuzz, InProcessServer
from tests.security.secured_platform import SecuredPlatform

# Loaded here, before the test modules are imported: their @settings inherit from the profile then in force.
settings.load_profile("devservers-ci")

# A probe interval longer than any test: a server is probed once, so a quiet window is quiet.
FUZZ_OPERATOR_ENV = {"DEVSERVERS_PROBE_INTERVAL": "1h"}


@pytest.fixture(scope="module")
def api_server() -> InProcessServer:
    return InProcessServer()


@pytest.fixture(scope="module")
def fuzz_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterFuzz]:
    platform = SecuredPlatform(tmp_path_factory.mktemp("fuzz"), operator_env=FUZZ_OPERATOR_ENV)
    platform.start()
    fuzz = ClusterFuzz(platform, strict=True, batch=4)
    try:
        yield fuzz
        fuzz.end_batch()
    finally:
        fuzz.close()
        platform.stop()

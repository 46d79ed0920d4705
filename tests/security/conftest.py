"""Each security test module gets the deployed product on a cluster of its own (see ``secured_platform``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.secured_platform import SecuredPlatform

# The idle clock scaled so an idle stop (the operator's own write to a DevServer) takes seconds.
OPERATOR_ENV = {"DEVSERVERS_IDLE_TIMEOUT_SCALE": "0.05", "DEVSERVERS_PROBE_INTERVAL": "1s",
                "DEVSERVERS_PROBE_WINDOW": "0.5"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[SecuredPlatform]:
    # A module may add operator settings (OPERATOR_ENV) and platform options (PLATFORM_OPTIONS) of its own.
    extra = getattr(request.module, "OPERATOR_ENV", {})
    options = getattr(request.module, "PLATFORM_OPTIONS", {})
    platform = SecuredPlatform(tmp_path_factory.mktemp("secured"), operator_env={**OPERATOR_ENV, **extra},
                               **options)
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()

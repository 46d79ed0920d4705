from __future__ import annotations

import pytest

pytest_plugins = ["devservers_sdk.localcluster.pytest_plugin", "tests.platform_fixture"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tests/sdk check the client on its own, playing the operator's part themselves: they run before any
    # test starts the session's cluster-wide operator (the `platform` fixture), which would act on their
    # objects. The sort is stable, so every other order is kept.
    items.sort(key=lambda item: 0 if "/tests/sdk/" in str(item.path) else 1)

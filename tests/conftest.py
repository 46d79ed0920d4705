from __future__ import annotations

import signal

import pytest

pytest_plugins = ["devservers_sdk.localcluster.pytest_plugin", "tests.platform_fixture"]


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background by a non-interactive shell (`.ci/run &`, nohup, some CI runners)
    # inherits SIGINT *ignored*, and so would every kubectl, devctl and kernel it starts: the Ctrl-C and
    # interrupt tests would then fail for a reason that is not theirs. A handled signal is reset to its
    # default in children at exec, so handling it here restores it everywhere.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tests/sdk check the client on its own, playing the operator's part themselves: they run before any
    # test starts the session's cluster-wide operator (the `platform` fixture), which would act on their
    # objects. The sort is stable, so every other order is kept.
    items.sort(key=lambda item: 0 if "/tests/sdk/" in str(item.path) else 1)

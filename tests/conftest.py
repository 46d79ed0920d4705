from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import Callable, Hashable, Iterator

import pytest

pytest_plugins = ["devservers_sdk.localcluster.pytest_plugin", "tests.platform_fixture"]

SHUFFLE_ENV = "DEVSERVERS_TEST_SHUFFLE_SEED"
_seed: pytest.StashKey[int | None] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shuffle", metavar="SEED", default=None,
        help=f"run the tests in an order shuffled by SEED (an integer, or 'random' for a new one each run; "
             f"the header prints it, so '--shuffle SEED' replays a failure). Default: ${SHUFFLE_ENV}, else "
             f"the collected order.")


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background by a non-interactive shell (`.ci/run &`, nohup, some CI runners)
    # inherits SIGINT *ignored*, and so would every kubectl, devctl and kernel it starts: the Ctrl-C and
    # interrupt tests would then fail for a reason that is not theirs. A handled signal is reset to its
    # default in children at exec, so handling it here restores it everywhere.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.stash[_seed] = _shuffle_seed(config)


@pytest.fixture(scope="module", autouse=True)
def no_event_loop_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the module that leaves an asyncio loop running in the main thread (a sync Playwright left open
    does): every later asyncio.run() would fail, so the failures would land on whichever modules the shuffle
    put after it, far from their cause."""
    yield
    if asyncio._get_running_loop() is not None:
        asyncio.events._set_running_loop(None)  # so the modules after it do not fail for its fault
        pytest.fail(f"{request.module.__name__} left an asyncio event loop running in the main thread: close "
                    f"what started it (sync_playwright(), a loop run_forever) in a fixture of this module",
                    pytrace=False)


def _shuffle_seed(config: pytest.Config) -> int | None:
    raw = config.getoption("--shuffle") or os.environ.get(SHUFFLE_ENV, "")
    raw = str(raw).strip().lower()
    if not raw or raw in {"0", "no", "off"}:
        return None
    if raw == "random":
        return random.SystemRandom().randrange(1, 2**31)
    try:
        return int(raw)
    except ValueError:
        raise pytest.UsageError(f"--shuffle / {SHUFFLE_ENV}={raw!r}: give an integer seed or 'random'") from None


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.stash.get(_seed, None)
    if seed is None:
        return "test order: as collected (shuffle with --shuffle random)"
    return f"test order: shuffled with seed {seed} (replay: --shuffle {seed})"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    # Repeated at the end, where a failure is read; the header is thousands of lines up.
    seed = config.stash.get(_seed, None)
    if seed is not None:
        terminalreporter.write_line(f"test order was shuffled with seed {seed} (replay: --shuffle {seed})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Shuffle modules among themselves, the classes of each module and the tests of each class.

    A module's (or class's) tests stay together: pytest tears a module-scoped fixture down as soon as the next
    test belongs to another module, so an order that interleaved them would start their clusters and servers
    over and over. Everything else is random: no test may rely on another having run before it.
    """
    seed = config.stash.get(_seed, None)
    if seed is None:
        return
    shuffler = random.Random(seed)
    items[:] = _shuffled(items, [_module_key, _class_key], shuffler)


def _module_key(item: pytest.Item) -> Hashable:
    return str(item.path)


def _class_key(item: pytest.Item) -> Hashable:
    cls = getattr(item, "cls", None)
    return cls.__qualname__ if cls is not None else None


def _shuffled(items: list[pytest.Item], keys: list[Callable[[pytest.Item], Hashable]],
              shuffler: random.Random) -> list[pytest.Item]:
    if not keys:
        result = list(items)
        shuffler.shuffle(result)
        return result
    groups: dict[Hashable, list[pytest.Item]] = {}
    for item in items:
        groups.setdefault(keys[0](item), []).append(item)
    order = list(groups.values())
    shuffler.shuffle(order)
    return [item for group in order for item in _shuffled(group, keys[1:], shuffler)]

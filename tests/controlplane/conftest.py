"""Builds the real control plane's binaries once per session, before any test runs (outside test timeouts).

The first build of kube-apiserver and friends takes many minutes on two cores: doing it inside a fixture would
charge it to the first test's timeout. So the build runs when collection is finished, only if a selected test of this
folder needs the binaries, with its progress on the terminal; the fixture then hands out the result, or skips when
Go is absent (and nothing is cached).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devservers_sdk.localcluster.controlplane.build import (
    ControlPlaneBinaries,
    ControlPlaneBuildError,
    GoToolchainError,
    ensure_binaries,
)
from devservers_sdk.localcluster.controlplane.runner import KubernetesControlPlane

_HERE = Path(__file__).parent
_built: pytest.StashKey[ControlPlaneBinaries | ControlPlaneBuildError] = pytest.StashKey()


def pytest_collection_finish(session: pytest.Session) -> None:
    if not any(Path(str(item.path)).is_relative_to(_HERE) and "binaries" in getattr(item, "fixturenames", ())
               for item in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[control plane] {line}")
        else:
            print(f"[control plane] {line}", file=sys.__stderr__, flush=True)

    try:
        session.stash[_built] = ensure_binaries(progress=progress)
    except ControlPlaneBuildError as exc:
        session.stash[_built] = exc


@pytest.fixture(scope="session")
def binaries(request: pytest.FixtureRequest) -> ControlPlaneBinaries:
    built = request.session.stash.get(_built, None)
    if built is None:  # collected some other way (e.g. a plugin re-running items): build now
        try:
            built = ensure_binaries()
        except ControlPlaneBuildError as exc:
            built = exc
    if isinstance(built, GoToolchainError) and "not installed" in str(built):
        pytest.skip(str(built))
    if isinstance(built, ControlPlaneBuildError):
        raise built
    return built


@pytest.fixture(scope="module")
def control_plane(binaries: ControlPlaneBinaries, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[KubernetesControlPlane]:
    plane = KubernetesControlPlane(tmp_path_factory.mktemp("control-plane"), binaries=binaries)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()

"""The SDK's public names resolve, and importing the package stays cheap."""

from __future__ import annotations

import subprocess
import sys

import devservers_sdk


def test_every_exported_name_resolves() -> None:
    for name in devservers_sdk.__all__:
        assert getattr(devservers_sdk, name) is not None, name


def test_errors_share_one_root() -> None:
    for name in devservers_sdk.__all__:
        value = getattr(devservers_sdk, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, devservers_sdk.DevServerError), name


def test_importing_the_package_loads_neither_kubernetes_nor_pydantic() -> None:
    code = "import sys, devservers_sdk; print(sorted(m for m in ('kubernetes', 'pydantic') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_all_lists_exactly_the_lazy_exports() -> None:
    assert sorted(devservers_sdk.__all__) == sorted(devservers_sdk._EXPORTS)

"""The committed builtin_schemas.json is what tools/generate_builtin_schemas.py makes today.

It goes stale when the ``kubernetes`` client is upgraded, when ``BUILTIN_TYPES`` gains a kind, or when
the generator changes; regenerate with ``.venv/bin/python tools/generate_builtin_schemas.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("kubernetes")

REPO = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    path = REPO / "tools" / "generate_builtin_schemas.py"
    spec = importlib.util.spec_from_file_location("generate_builtin_schemas", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated() -> tuple[ModuleType, dict[str, Any]]:
    generator = _generator()
    return generator, generator.build()


def test_committed_builtin_schemas_are_fresh(generated: tuple[ModuleType, dict[str, Any]]) -> None:
    generator, document = generated
    expected = generator.render(document)
    committed = generator.OUTPUT.read_text(encoding="utf-8")
    assert committed == expected, (
        "devservers_sdk/localcluster/apiserver/builtin_schemas.json is stale: "
        "run `.venv/bin/python tools/generate_builtin_schemas.py` and commit the result"
    )


def test_generated_kinds_cover_builtin_types(generated: tuple[ModuleType, dict[str, Any]]) -> None:
    from devservers_sdk.localcluster.apiserver.resources import BUILTIN_TYPES

    kinds = generated[1]["kinds"]
    for rt in BUILTIN_TYPES:
        assert f"{rt.group}/{rt.version}/{rt.kind}" in kinds

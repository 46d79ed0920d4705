"""Kubernetes JSONPath as used by CRD printer columns and ``kubectl wait --for=jsonpath``."""

from __future__ import annotations

import pytest

from devservers_sdk.localcluster.apiserver.jsonpath import JSONPathError, evaluate, parse

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-0",
        "creationTimestamp": "2024-05-01T11:00:00Z",
        "labels": {"app.kubernetes.io/name": "web", "tier": "frontend"},
    },
    "spec": {
        "owner": "alice",
        "items": [{"name": "a", "size": 1}, {"name": "b", "size": 3}, {"name": "c", "size": 5}],
    },
    "status": {
        "phase": "Running",
        "ready": True,
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
        ],
    },
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (".spec.owner", ["alice"]),
        (".metadata.creationTimestamp", ["2024-05-01T11:00:00Z"]),
        ("{.status.phase}", ["Running"]),
        ("$.status.phase", ["Running"]),
        ("status.phase", ["Running"]),
        (".status.ready", [True]),
        (".spec.missing", []),
        (".spec.owner.deeper", []),
    ],
)
def test_fields(expression: str, expected: list[object]) -> None:
    assert evaluate(expression, POD) == expected


def test_filter_selects_condition_status() -> None:
    assert evaluate('.status.conditions[?(@.type=="Ready")].status', POD) == ["False"]
    assert evaluate(".status.conditions[?(@.type=='PodScheduled')].status", POD) == ["True"]
    assert evaluate('.status.conditions[?(@.type=="Missing")].status', POD) == []


def test_filter_operators_and_existence() -> None:
    assert evaluate(".spec.items[?(@.size > 1)].name", POD) == ["b", "c"]
    assert evaluate(".spec.items[?(@.size<=3)].name", POD) == ["a", "b"]
    assert evaluate('.status.conditions[?(@.type != "Ready")].type', POD) == ["PodScheduled"]
    assert evaluate(".status.conditions[?(@.reason)].type", POD) == ["Ready"]
    # A string never equals a number, as in client-go.
    assert evaluate('.spec.items[?(@.size=="1")].name', POD) == []


def test_filter_against_document_root() -> None:
    doc = {"want": 3, "items": [{"n": 1}, {"n": 3}]}
    assert evaluate(".items[?(@.n == $.want)].n", doc) == [3]


def test_array_indexes_slices_and_wildcards() -> None:
    assert evaluate(".spec.items[0].name", POD) == ["a"]
    assert evaluate(".spec.items[-1].name", POD) == ["c"]
    assert evaluate(".spec.items[7].name", POD) == []
    assert evaluate(".spec.items[*].name", POD) == ["a", "b", "c"]
    assert evaluate(".spec.items[0:2].name", POD) == ["a", "b"]
    assert evaluate(".spec.items[::2].name", POD) == ["a", "c"]
    assert evaluate(".spec.items[0,2].name", POD) == ["a", "c"]
    assert evaluate(".spec.items.*.name", POD) == ["a", "b", "c"]
    assert evaluate(".metadata.labels.*", POD) == ["web", "frontend"]


def test_keys_with_dots() -> None:
    assert evaluate(r".metadata.labels.app\.kubernetes\.io/name", POD) == ["web"]
    assert evaluate(".metadata.labels['app.kubernetes.io/name']", POD) == ["web"]
    assert evaluate('.metadata.labels["app.kubernetes.io/name"]', POD) == ["web"]
    # Without escaping, the dots are path separators and nothing matches.
    assert evaluate(".metadata.labels.app.kubernetes.io/name", POD) == []


def test_recursive_descent() -> None:
    assert evaluate("..name", POD) == ["web-0", "a", "b", "c"]


def test_index_on_a_map_or_field_on_a_list_matches_nothing() -> None:
    assert evaluate(".metadata[0]", POD) == []
    assert evaluate(".spec.items.name", POD) == []


def test_parse_once_and_reuse() -> None:
    path = parse(".spec.size")
    assert path.find({"spec": {"size": "small"}}) == ["small"]
    assert path.find({"spec": {"size": "large"}}) == ["large"]


@pytest.mark.parametrize(
    "expression", ["", "{}", ".spec.items[", ".a[?(@.x==)]", ".a[?@.x]", ".a[1:2:0]", ".a..", ".a b"]
)
def test_malformed_expressions_raise(expression: str) -> None:
    with pytest.raises(JSONPathError):
        evaluate(expression, POD)


def test_error_is_a_value_error() -> None:
    assert issubclass(JSONPathError, ValueError)

from __future__ import annotations

from typing import Any

import pytest

from devservers_sdk.localcluster.apiserver.selectors import (
    FieldSelector,
    LabelSelector,
    Requirement,
    SelectorError,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
)

# --------------------------------------------------------------------------------------------------
# Label selector string grammar
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app=web", {"app": "db"}, False),
        ("app=web", {}, False),
        ("app==web", {"app": "web"}, True),
        ("app!=web", {"app": "db"}, True),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("tier in (a,b)", {"tier": "b"}, True),
        ("tier in (a,b)", {"tier": "c"}, False),
        ("tier in (a,b)", {}, False),
        ("tier notin (a,b)", {"tier": "c"}, True),
        ("tier notin (a,b)", {}, True),
        ("tier notin (a,b)", {"tier": "a"}, False),
        ("gpu", {"gpu": ""}, True),
        ("gpu", {"cpu": "x"}, False),
        ("!gpu", {"cpu": "x"}, True),
        ("!gpu", {"gpu": "x"}, False),
        ("app=web,tier in (fe),!canary", {"app": "web", "tier": "fe"}, True),
        ("app=web,tier in (fe),!canary", {"app": "web", "tier": "fe", "canary": "1"}, False),
        ("app=", {"app": ""}, True),
        ("app=", {"app": "x"}, False),
        ("app=", {}, False),
        ("replicas>2", {"replicas": "3"}, True),
        ("replicas>2", {"replicas": "2"}, False),
        ("replicas<2", {"replicas": "1"}, True),
        ("replicas<2", {"replicas": "x"}, False),
        ("replicas<2", {}, False),
        ("devservers.io/user=alice", {"devservers.io/user": "alice"}, True),
        ("", {"anything": "goes"}, True),
        ("", {}, True),
    ],
)
def test_label_selector_matches(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


def test_label_selector_tolerates_whitespace() -> None:
    selector = parse_label_selector("  app = web ,\ttier  in  ( a , b ) , ! canary , x  != y  ")

    # Sorted by key, so "!canary" sorts as "canary".
    assert str(selector) == "app=web,!canary,tier in (a,b),x!=y"
    assert selector.matches({"app": "web", "tier": "a"})
    assert not selector.matches({"app": "web", "tier": "a", "x": "y"})


def test_label_selector_canonical_string_sorts_keys_and_values() -> None:
    selector = parse_label_selector("z notin (b,a,a),a in (y,x),m,!n,k==v,l!=w,g>1,h<2")

    assert str(selector) == "a in (x,y),g>1,h<2,k==v,l!=w,m,!n,z notin (a,b)"
    assert parse_label_selector(str(selector)) == selector


def test_label_selector_in_and_notin_are_identifiers_outside_operator_position() -> None:
    selector = parse_label_selector("in in (in,notin),notin notin (in)")

    assert selector.matches({"in": "notin"})
    assert not selector.matches({"in": "notin", "notin": "in"})
    assert str(selector) == "in in (in,notin),notin notin (in)"


@pytest.mark.parametrize(
    ("selector", "values"),
    [
        ("a in ()", ("",)),
        ("a in (,)", ("",)),
        ("a in (x,)", ("", "x")),
        ("a in (,x)", ("", "x")),
        ("a in (x,,y)", ("", "x", "y")),
    ],
)
def test_label_selector_empty_values_in_sets(selector: str, values: tuple[str, ...]) -> None:
    (requirement,) = parse_label_selector(selector).requirements
    assert requirement.values == values


def test_label_selector_requirements_are_structured() -> None:
    selector = parse_label_selector("b in (y,x),a")

    assert selector.requirements == (Requirement("a", "exists"), Requirement("b", "in", ("x", "y")))


def test_label_selector_everything_and_nothing() -> None:
    assert LabelSelector.everything().matches({"a": "b"})
    assert LabelSelector.everything().matches(None)
    assert LabelSelector.everything().is_everything
    assert parse_label_selector("").is_everything
    assert not LabelSelector.nothing().matches({})
    assert not LabelSelector.nothing().matches({"a": "b"})
    assert not LabelSelector.nothing().is_everything
    assert str(LabelSelector.nothing()) == ""


def test_label_selector_matches_none_labels_as_empty() -> None:
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)


def test_label_selector_requires_exact_match() -> None:
    selector = parse_label_selector("app=web,tier in (fe),env in (a,b),x!=y")

    assert selector.requires_exact_match("app") == "web"
    assert selector.requires_exact_match("tier") == "fe"
    assert selector.requires_exact_match("env") is None
    assert selector.requires_exact_match("x") is None
    assert selector.requires_exact_match("missing") is None


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a in x", "unable to parse requirement: found 'x' expected: '('"),
        ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("a=(b)", "unable to parse requirement: found '(', expected: identifier"),
        ("a,", "found '', expected: identifier after ','"),
        ("a,,b", "found ',', expected: identifier after ','"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("!=a", "found '!=', expected: !, identifier, or 'end of string'"),
        ("!!a", "unable to parse requirement: found '!', expected: identifier"),
        ("a>b", "the value must be an integer"),
    ],
)
def test_label_selector_syntax_errors(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(selector)
    assert message in caught.value.message
    assert str(caught.value) == caught.value.message


@pytest.mark.parametrize(
    ("selector", "detail"),
    [
        ("-a=b", "name part must consist of alphanumeric characters"),
        ("a-=b", "name part must consist of alphanumeric characters"),
        ("a b/c=d", "expected"),
        (f"{'k' * 64}=v", "name part must be no more than 63 bytes"),
        ("Example.COM/a=b", "prefix part a lowercase RFC 1123 subdomain"),
        ("/a=b", "prefix part must be non-empty"),
        ("a/=b", "name part must be non-empty"),
        ("a/b/c=d", "a qualified name must consist of"),
        (f"{'p' * 254}/a=b", "prefix part must be no more than 253 bytes"),
        (f"a={'v' * 64}", "must be no more than 63 bytes"),
        ("a=-v", "a valid label must be an empty string or consist of"),
        ("a in (ok,bad!)", "expected"),
        ("a=v_", "a valid label must be an empty string"),
    ],
)
def test_label_selector_invalid_keys_and_values(selector: str, detail: str) -> None:
    with pytest.raises(SelectorError, match="unable to parse requirement") as caught:
        parse_label_selector(selector)
    assert detail in caught.value.message


@pytest.mark.parametrize(
    "selector",
    [
        f"{'k' * 63}=v",
        f"a={'v' * 63}",
        "a.b_c-d=E.f_G-h",
        "sub.example.com/Name_1=value.2",
        "1=2",
        "a in (A,b-c,d_e,f.g)",
    ],
)
def test_label_selector_valid_keys_and_values(selector: str) -> None:
    assert parse_label_selector(selector).requirements


def test_selector_error_is_a_value_error() -> None:
    assert issubclass(SelectorError, ValueError)


# --------------------------------------------------------------------------------------------------
# metav1.LabelSelector objects
# --------------------------------------------------------------------------------------------------


def test_label_selector_from_none_selects_nothing() -> None:
    selector = label_selector_from_dict(None)

    assert selector == LabelSelector.nothing()
    assert not selector.matches({})
    assert not selector.matches({"app": "web"})


@pytest.mark.parametrize("selector", [{}, {"matchLabels": {}}, {"matchLabels": None, "matchExpressions": []}])
def test_label_selector_from_empty_dict_selects_everything(selector: dict[str, Any]) -> None:
    result = label_selector_from_dict(selector)

    assert result.is_everything
    assert result.matches({})
    assert result.matches({"a": "b"})


def test_label_selector_from_dict_match_labels_and_expressions() -> None:
    selector = label_selector_from_dict(
        {
            "matchLabels": {"app": "ds", "devservers.io/user": "alice"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["gpu", "cpu"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "owner", "operator": "Exists"},
                {"key": "paused", "operator": "DoesNotExist", "values": []},
            ],
        }
    )

    base = {"app": "ds", "devservers.io/user": "alice", "tier": "gpu", "owner": "x"}
    assert selector.matches(base)
    assert selector.matches({**base, "env": "dev"})
    assert not selector.matches({**base, "env": "prod"})
    assert not selector.matches({**base, "tier": "tpu"})
    assert not selector.matches({**base, "paused": "true"})
    assert not selector.matches({k: v for k, v in base.items() if k != "owner"})
    assert not selector.matches({**base, "app": "other"})
    assert str(selector) == "app=ds,devservers.io/user=alice,env notin (prod),owner,!paused,tier in (cpu,gpu)"


def test_label_selector_from_dict_string_round_trips_through_parser() -> None:
    selector = label_selector_from_dict(
        {
            "matchLabels": {"b": "1"},
            "matchExpressions": [{"key": "a", "operator": "In", "values": ["y", "x"]}],
        }
    )

    assert str(selector) == "a in (x,y),b=1"
    assert parse_label_selector(str(selector)).matches({"a": "x", "b": "1"})


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]},
            "not a valid label selector",
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "values set can't be empty"),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn"}]}, "values set can't be empty"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "must be empty"),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]}, "list of strings"),
        ({"matchExpressions": [{"key": "Bad Key", "operator": "Exists"}]}, "Invalid value"),
        ({"matchExpressions": ["a"]}, "must be an object"),
        ({"matchExpressions": {"a": "b"}}, "must be a list"),
        ({"matchLabels": {"a": "bad value"}}, "a valid label"),
        ({"matchLabels": {"-a": "b"}}, "name part"),
        ({"matchLabels": {"a": 1}}, "must be a string"),
        ({"matchLabels": ["a"]}, "matchLabels must be an object"),
    ],
)
def test_label_selector_from_dict_invalid(selector: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        label_selector_from_dict(selector)


def test_label_selector_from_dict_rejects_non_objects() -> None:
    with pytest.raises(SelectorError):
        label_selector_from_dict("app=web")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------------------------------


def _pod(name: str, phase: str | None = None, node: str | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = {"metadata": {"name": name, "namespace": "dev"}, "spec": {}, "status": {}}
    if phase is not None:
        pod["status"]["phase"] = phase
    if node is not None:
        pod["spec"]["nodeName"] = node
    return pod


@pytest.mark.parametrize(
    ("selector", "obj", "expected"),
    [
        ("metadata.name=a", _pod("a"), True),
        ("metadata.name=a", _pod("b"), False),
        ("metadata.name==a", _pod("a"), True),
        ("metadata.name!=a", _pod("a"), False),
        ("metadata.name!=a", _pod("b"), True),
        ("metadata.namespace=dev,metadata.name=a", _pod("a"), True),
        ("metadata.namespace=prod,metadata.name=a", _pod("a"), False),
        ("status.phase=Running", _pod("a", phase="Running"), True),
        ("status.phase!=Running", _pod("a"), True),
        ("status.phase=", _pod("a"), True),
        ("spec.nodeName=", _pod("a"), True),
        ("spec.nodeName=", _pod("a", node="n1"), False),
        ("spec.nodeName!=", _pod("a", node="n1"), True),
        ("spec.nodeName=n1", _pod("a", node="n1"), True),
        ("spec.nodeName=n1", {"metadata": {"name": "a"}}, False),
        (
            "involvedObject.name=ds,involvedObject.uid=u1",
            {"involvedObject": {"name": "ds", "uid": "u1"}},
            True,
        ),
        ("involvedObject.uid=u2", {"involvedObject": {"name": "ds", "uid": "u1"}}, False),
        ("type=Warning", {"type": "Warning"}, True),
        ("type=Warning", {"type": "Normal"}, False),
        ("spec.unschedulable=true", {"spec": {"unschedulable": True}}, True),
        ("spec.unschedulable=false", {"spec": {"unschedulable": False}}, True),
        ("spec.replicas=3", {"spec": {"replicas": 3}}, True),
        ("metadata.name=a", {"metadata": None}, False),
        ("metadata=", {"metadata": {"name": "a"}}, True),
        ("", _pod("a"), True),
    ],
)
def test_field_selector_matches(selector: str, obj: dict[str, Any], expected: bool) -> None:
    assert parse_field_selector(selector).matches(obj) is expected


def test_field_selector_escaped_values() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b\=c\\d")

    assert selector.requirements[0].value == "a,b=c\\d"
    assert selector.matches({"metadata": {"name": "a,b=c\\d"}})
    assert str(selector) == r"metadata.name=a\,b\=c\\d"
    assert parse_field_selector(str(selector)) == selector


def test_field_selector_terms_are_sorted_and_double_equals_prints_as_equals() -> None:
    selector = parse_field_selector("status.phase!=Failed,metadata.name==a")

    assert str(selector) == "metadata.name=a,status.phase!=Failed"
    assert [r.field for r in selector.requirements] == ["metadata.name", "status.phase"]


def test_field_selector_fields_and_exact_name() -> None:
    selector = parse_field_selector("metadata.name=ds-alice,metadata.namespace=dev,status.phase!=Failed")

    assert selector.fields() == {"metadata.name", "metadata.namespace", "status.phase"}
    assert selector.exact_name() == "ds-alice"
    assert selector.requires_exact_match("metadata.namespace") == "dev"
    assert selector.requires_exact_match("status.phase") is None


@pytest.mark.parametrize(
    ("selector", "name"),
    [
        ("metadata.name=a", "a"),
        ("metadata.name==a", "a"),
        ("metadata.name!=a", None),
        ("metadata.namespace=a", None),
        ("", None),
        ("metadata.name=", ""),
    ],
)
def test_field_selector_exact_name(selector: str, name: str | None) -> None:
    assert parse_field_selector(selector).exact_name() == name


def test_field_selector_empty_selects_everything() -> None:
    selector = parse_field_selector("")

    assert selector == FieldSelector.everything()
    assert selector.is_everything
    assert selector.fields() == set()
    assert str(selector) == ""
    assert selector.matches({})


def test_field_selector_skips_empty_terms() -> None:
    selector = parse_field_selector("metadata.name=a,,")

    assert selector.fields() == {"metadata.name"}


def test_field_selector_does_not_trim_whitespace_like_apiserver() -> None:
    selector = parse_field_selector("metadata.name = a")

    assert selector.fields() == {"metadata.name "}
    assert selector.requirements[0].value == " a"


def test_field_selector_value_may_contain_operator_characters_after_the_first_operator() -> None:
    selector = parse_field_selector("a!=b!c")

    assert selector.requirements[0].operator == "!="
    assert selector.requirements[0].value == "b!c"


def test_field_selector_matches_precomputed_fields() -> None:
    selector = parse_field_selector("spec.nodeName=,metadata.name=a")

    assert selector.matches_fields({"metadata.name": "a"})
    assert not selector.matches_fields({"metadata.name": "a", "spec.nodeName": "n1"})
    assert not selector.matches_fields({})


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("a=b=c", "invalid field selector: unescaped character in value: ="),
        ("a=\\x", "invalid field selector: invalid escape sequence: \\x"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
    ],
)
def test_field_selector_errors(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(selector)
    assert caught.value.message == message

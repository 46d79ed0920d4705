"""CRD structural-schema handling: validation wording, defaulting, pruning and schema checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from devservers_sdk.localcluster.apiserver import schema
from devservers_sdk.localcluster.apiserver.schema import (
    apply_defaults,
    go_float,
    prune,
    structural_errors,
    validate,
)

WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "string", "enum": ["small", "medium", "large"]},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "owner": {"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 8},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 3},
                "tags": {"type": "array", "maxItems": 2, "minItems": 1, "items": {"type": "string"}},
                "port": {"x-kubernetes-int-or-string": True},
                "expires": {"type": "string", "format": "date-time"},
                "note": {"type": "string", "nullable": True},
                "ratio": {"type": "number", "multipleOf": 0.5, "exclusiveMaximum": True, "maximum": 2},
                "storage": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "class": {"type": "string", "default": "standard"},
                        "size": {"type": "string"},
                    },
                },
                "volumes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "readOnly": {"type": "boolean", "default": False},
                        },
                    },
                },
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                },
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def widget(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "default"},
        "spec": {"size": "small", **spec},
    }


def only(causes: list[dict[str, str]]) -> dict[str, str]:
    assert len(causes) == 1, causes
    return causes[0]


# --- validation ---------------------------------------------------------------------------------------------


def test_valid_widget_has_no_causes() -> None:
    obj = widget(
        replicas=3,
        owner="alice",
        labels={"team": "ml"},
        tags=["gpu"],
        port="http",
        expires="2030-01-01T00:00:00Z",
        note=None,
        ratio=1.5,
        template={"apiVersion": "v1", "kind": "Pod", "spec": {}},
    )
    assert validate(WIDGET_SCHEMA, obj) == []


def test_type_mismatch_matches_apiserver_wording() -> None:
    assert only(validate(WIDGET_SCHEMA, widget(replicas="string"))) == {
        "reason": "FieldValueTypeInvalid",
        "message": 'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
        "field": "spec.replicas",
    }


def test_integral_float_is_an_integer_and_integer_is_a_number() -> None:
    assert validate(WIDGET_SCHEMA, widget(replicas=3.0, ratio=1)) == []
    # As kube-openapi: the type error, then the number validator's range check, which names no field.
    assert validate(WIDGET_SCHEMA, widget(replicas=2.5)) == [
        {
            "reason": "FieldValueTypeInvalid",
            "message": 'Invalid value: "number": spec.replicas in body must be of type integer: "number"',
            "field": "spec.replicas",
        },
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "": Checked value must be of type integer (default format) in spec.replicas',
            "field": "<nil>",
        },
    ]


def test_boolean_is_not_an_integer() -> None:
    assert only(validate(WIDGET_SCHEMA, widget(replicas=True)))["message"] == (
        'Invalid value: "boolean": spec.replicas in body must be of type integer: "boolean"'
    )


def test_required_value() -> None:
    obj = widget()
    del obj["spec"]["size"]
    assert only(validate(WIDGET_SCHEMA, obj)) == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.size",
    }


def test_required_at_the_root_has_no_leading_dot() -> None:
    causes = validate(
        {"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}}, {}
    )
    assert causes == [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec"}]


def test_enum_is_not_supported_value() -> None:
    assert only(validate(WIDGET_SCHEMA, widget(size="huge"))) == {
        "reason": "FieldValueNotSupported",
        "message": 'Unsupported value: "huge": supported values: "small", "medium", "large"',
        "field": "spec.size",
    }


def test_non_string_enum_values_are_json_quoted() -> None:
    causes = validate({"type": "object", "properties": {"n": {"type": "integer", "enum": [1, 2]}}}, {"n": 3})
    assert only(causes)["message"] == 'Unsupported value: 3: supported values: "1", "2"'


def test_minimum_and_maximum() -> None:
    assert only(validate(WIDGET_SCHEMA, widget(replicas=0))) == {
        "reason": "FieldValueInvalid",
        "message": "Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        "field": "spec.replicas",
    }
    assert only(validate(WIDGET_SCHEMA, widget(replicas=11)))["message"] == (
        "Invalid value: 11: spec.replicas in body should be less than or equal to 10"
    )


def test_large_numbers_are_printed_like_go_float64() -> None:
    assert only(validate(WIDGET_SCHEMA, widget(replicas=10_000_000)))["message"] == (
        "Invalid value: 1e+07: spec.replicas in body should be less than or equal to 10"
    )


def test_exclusive_maximum_and_multiple_of() -> None:
    assert only(validate(WIDGET_SCHEMA, widget(ratio=2)))["message"] == (
        "Invalid value: 2: spec.ratio in body should be less than 2"
    )
    assert only(validate(WIDGET_SCHEMA, widget(ratio=0.7)))["message"] == (
        "Invalid value: 0.7: spec.ratio in body should be a multiple of 0.5"
    )


def test_string_pattern_and_lengths() -> None:
    assert only(validate(WIDGET_SCHEMA, widget(owner="Bob"))) == {
        "reason": "FieldValueInvalid",
        "message": "Invalid value: \"Bob\": spec.owner in body should match '^[a-z]+$'",
        "field": "spec.owner",
    }
    assert only(validate(WIDGET_SCHEMA, widget(owner="a"))) == {
        "reason": "FieldValueInvalid",
        "message": 'Invalid value: "a": spec.owner in body should be at least 2 chars long',
        "field": "spec.owner",
    }
    assert only(validate(WIDGET_SCHEMA, widget(owner="abcdefghij"))) == {
        "reason": "FieldValueTooLong",
        "message": "Too long: may not be more than 8 bytes",
        "field": "spec.owner",
    }


def test_array_item_counts() -> None:
    assert only(validate(WIDGET_SCHEMA, widget(tags=["a", "b", "c"]))) == {
        "reason": "FieldValueTooMany",
        "message": "Too many: 3: must have at most 2 items",
        "field": "spec.tags",
    }
    assert only(validate(WIDGET_SCHEMA, widget(tags=[]))) == {
        "reason": "FieldValueInvalid",
        "message": "Invalid value: 0: spec.tags in body should have at least 1 items",
        "field": "spec.tags",
    }


def test_array_items_are_validated_with_index_paths() -> None:
    assert only(validate(WIDGET_SCHEMA, widget(tags=["ok", 7])))["field"] == "spec.tags[1]"
    cause = only(validate(WIDGET_SCHEMA, widget(volumes=[{"name": "a"}, {"name": 5}])))
    assert cause["field"] == "spec.volumes[1].name"
    assert (
        cause["message"]
        == 'Invalid value: "integer": spec.volumes[1].name in body must be of type string: "integer"'
    )


def test_map_values_use_additional_properties() -> None:
    cause = only(validate(WIDGET_SCHEMA, widget(labels={"team": 1})))
    assert cause["field"] == "spec.labels.team"
    assert cause["reason"] == "FieldValueTypeInvalid"


def test_max_properties_is_too_many() -> None:
    assert only(validate(WIDGET_SCHEMA, widget(labels={"a": "1", "b": "2", "c": "3", "d": "4"}))) == {
        "reason": "FieldValueTooMany",
        "message": "Too many: 4: must have at most 3 items",
        "field": "spec.labels",
    }


@pytest.mark.parametrize("port", [80, "http", "8080"])
def test_int_or_string_accepts_both(port: object) -> None:
    assert validate(WIDGET_SCHEMA, widget(port=port)) == []


@pytest.mark.parametrize(("port", "actual"), [(True, "boolean"), (1.5, "number"), ({"a": 1}, "object")])
def test_int_or_string_rejects_others(port: object, actual: str) -> None:
    assert only(validate(WIDGET_SCHEMA, widget(port=port)))["message"] == (
        f'Invalid value: "{actual}": spec.port in body must be of type integer,string: "{actual}"'
    )


def test_date_time_format() -> None:
    assert validate(WIDGET_SCHEMA, widget(expires="2030-01-01T10:00:00.123+02:00")) == []
    assert only(validate(WIDGET_SCHEMA, widget(expires="tomorrow"))) == {
        "reason": "FieldValueTypeInvalid",
        "message": 'Invalid value: "tomorrow": spec.expires in body must be of type date-time: "tomorrow"',
        "field": "spec.expires",
    }
    assert validate(WIDGET_SCHEMA, widget(expires="2030-02-30T00:00:00Z")) != []


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("ipv4", "10.0.0.1", "10.0.0.300"),
        ("ipv6", "::1", "10.0.0.1"),
        ("cidr", "10.0.0.0/8", "10.0.0.0"),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", "not-a-uuid"),
        ("date", "2024-02-29", "2023-02-29"),
        ("byte", "aGVsbG8=", "!!"),
        ("duration", "1h30m", "soon"),
        ("hostname", "db.example.com", "-bad-"),
        ("email", "a@b.io", "nobody"),
    ],
)
def test_supported_string_formats(fmt: str, good: str, bad: str) -> None:
    sch = {"type": "object", "properties": {"v": {"type": "string", "format": fmt}}}
    assert validate(sch, {"v": good}) == []
    assert only(validate(sch, {"v": bad}))["message"] == (
        f'Invalid value: "{bad}": v in body must be of type {fmt}: "{bad}"'
    )


def test_unknown_formats_are_ignored_like_the_apiserver_strips_them() -> None:
    sch = {"type": "object", "properties": {"v": {"type": "string", "format": "my-custom-format"}}}
    assert validate(sch, {"v": "anything"}) == []


def test_null_is_rejected_unless_nullable() -> None:
    assert validate(WIDGET_SCHEMA, widget(note=None)) == []
    assert only(validate(WIDGET_SCHEMA, widget(owner=None))) == {
        "reason": "FieldValueTypeInvalid",
        "message": 'Invalid value: "null": spec.owner in body must be of type string: "null"',
        "field": "spec.owner",
    }


def test_unknown_fields_are_not_validation_errors() -> None:
    # Unknown fields are the pruner's business (and fieldValidation's), not the validator's.
    assert validate(WIDGET_SCHEMA, widget(unknown=1)) == []


def test_preserve_unknown_fields_still_validates_declared_properties() -> None:
    sch = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {"n": {"type": "integer"}},
    }
    assert validate(sch, {"n": 1, "free": {"x": [1, 2]}}) == []
    assert only(validate(sch, {"n": "x"}))["field"] == "n"


def test_embedded_resource_needs_api_version_and_kind() -> None:
    causes = validate(WIDGET_SCHEMA, widget(template={"spec": {}}))
    assert causes == [
        {
            "reason": "FieldValueRequired",
            "message": "Required value: must not be empty",
            "field": "spec.template.apiVersion",
        },
        {
            "reason": "FieldValueRequired",
            "message": "Required value: must not be empty",
            "field": "spec.template.kind",
        },
    ]
    bad_kind = only(validate(WIDGET_SCHEMA, widget(template={"apiVersion": "v1", "kind": "Not_A_Kind"})))
    assert bad_kind["field"] == "spec.template.kind"
    assert bad_kind["message"].startswith('Invalid value: "Not_A_Kind": may have mixed case')
    bad_version = only(validate(WIDGET_SCHEMA, widget(template={"apiVersion": "a/b/c", "kind": "Pod"})))
    assert bad_version["message"] == 'Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c'


def test_several_causes_are_all_reported() -> None:
    causes = validate(WIDGET_SCHEMA, widget(size="huge", replicas="x", tags=["a", "b", "c"]))
    assert {c["field"] for c in causes} == {"spec.size", "spec.replicas", "spec.tags"}


def test_any_of_failure_is_reported_at_nil_path() -> None:
    sch = {
        "type": "object",
        "properties": {"spec": {"type": "object", "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}},
    }
    assert validate(sch, {"spec": {"a": 1}}) == []
    causes = validate(sch, {"spec": {}})
    assert causes[0] == {
        "reason": "FieldValueInvalid",
        "message": 'Invalid value: "": "spec" must validate at least one schema (anyOf)',
        "field": "<nil>",
    }
    assert {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.a"} in causes


def test_one_of_all_of_and_not() -> None:
    one_of = {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
    assert validate(one_of, {"a": 1}) == []
    assert validate(one_of, {"a": 1, "b": 2})[0]["message"] == (
        'Invalid value: "": "" must validate one and only one schema (oneOf). Found 2 valid alternatives'
    )
    all_of = {"type": "object", "allOf": [{"required": ["a"]}, {"required": ["b"]}]}
    all_of_causes = validate(all_of, {"a": 1})
    assert {"reason": "FieldValueRequired", "message": "Required value", "field": "b"} in all_of_causes
    assert any("must validate all the schemas (allOf)" in c["message"] for c in all_of_causes)
    negated = {"type": "object", "properties": {"s": {"type": "string", "not": {"enum": ["root"]}}}}
    assert validate(negated, {"s": "alice"}) == []
    assert only(validate(negated, {"s": "root"}))["message"] == (
        'Invalid value: "": "s" must not validate the schema (not)'
    )


def test_causes_fit_errors_invalid() -> None:
    from devservers_sdk.localcluster.apiserver.errors import invalid

    error = invalid("Widget", "w1", validate(WIDGET_SCHEMA, widget(replicas=0)), group="example.com")
    assert error.code == 422
    assert error.message == (
        'Widget.example.com "w1" is invalid: spec.replicas: Invalid value: 0: '
        "spec.replicas in body should be greater than or equal to 1"
    )


# --- defaulting ---------------------------------------------------------------------------------------------


def test_defaults_fill_absent_fields_and_recurse_into_defaults() -> None:
    obj = widget()
    result = apply_defaults(WIDGET_SCHEMA, obj)
    assert result["spec"]["replicas"] == 1
    # storage defaults to {} and then its own properties are defaulted.
    assert result["spec"]["storage"] == {"class": "standard"}
    assert "replicas" not in obj["spec"], "the input must not be mutated"


def test_defaults_do_not_override_present_values() -> None:
    result = apply_defaults(WIDGET_SCHEMA, widget(replicas=5, storage={"class": "fast"}))
    assert result["spec"]["replicas"] == 5
    assert result["spec"]["storage"] == {"class": "fast"}


def test_defaults_apply_to_array_items() -> None:
    result = apply_defaults(WIDGET_SCHEMA, widget(volumes=[{"name": "a"}, {"name": "b", "readOnly": True}]))
    assert result["spec"]["volumes"] == [{"name": "a", "readOnly": False}, {"name": "b", "readOnly": True}]


def test_defaults_apply_to_map_values() -> None:
    sch = {
        "type": "object",
        "properties": {
            "ports": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"protocol": {"type": "string", "default": "TCP"}},
                },
            }
        },
    }
    assert apply_defaults(sch, {"ports": {"http": {}, "dns": {"protocol": "UDP"}}}) == {
        "ports": {"http": {"protocol": "TCP"}, "dns": {"protocol": "UDP"}}
    }


def test_defaults_need_an_existing_parent() -> None:
    # A default on spec.replicas does not create spec.
    assert apply_defaults(WIDGET_SCHEMA, {"apiVersion": "example.com/v1", "kind": "Widget"}) == {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
    }


def test_defaults_are_deep_copies() -> None:
    first = apply_defaults(WIDGET_SCHEMA, widget())
    first["spec"]["storage"]["class"] = "mutated"
    second = apply_defaults(WIDGET_SCHEMA, widget())
    assert second["spec"]["storage"]["class"] == "standard"
    assert WIDGET_SCHEMA["properties"]["spec"]["properties"]["storage"]["default"] == {}


def test_non_nullable_null_takes_the_default_or_is_dropped() -> None:
    result = apply_defaults(WIDGET_SCHEMA, widget(replicas=None, owner=None, note=None))
    assert result["spec"]["replicas"] == 1  # replaced by its default
    assert "owner" not in result["spec"]  # no default: dropped, not rejected
    assert result["spec"]["note"] is None  # nullable: kept
    assert validate(WIDGET_SCHEMA, result) == []


def test_null_status_is_dropped() -> None:
    obj = widget()
    obj["status"] = None
    assert "status" not in apply_defaults(WIDGET_SCHEMA, obj)


# --- pruning ------------------------------------------------------------------------------------------------


def test_prune_drops_unknown_fields_and_reports_paths() -> None:
    obj = widget(unknown=1, volumes=[{"name": "a", "junk": True}], storage={"class": "x", "color": "red"})
    obj["extraTop"] = {"a": 1}
    pruned, dropped = prune(WIDGET_SCHEMA, obj)
    assert dropped == ["extraTop", "spec.storage.color", "spec.unknown", "spec.volumes[0].junk"]
    assert "unknown" not in pruned["spec"]
    assert pruned["spec"]["volumes"] == [{"name": "a"}]
    assert "extraTop" not in pruned
    assert obj["spec"]["unknown"] == 1, "the input must not be mutated"


def test_prune_keeps_type_and_object_meta_at_the_root() -> None:
    bare = {"type": "object", "properties": {"spec": {"type": "object", "properties": {}}}}
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "labels": {"a": "b"}, "whatever": 1},
        "spec": {"x": 1},
    }
    pruned, dropped = prune(bare, obj)
    assert pruned["metadata"] == obj["metadata"]
    assert pruned["apiVersion"] == "example.com/v1" and pruned["kind"] == "Widget"
    assert dropped == ["spec.x"]


def test_preserve_unknown_fields_keeps_everything_at_that_level() -> None:
    obj = widget(extra={"anything": {"deep": [1, {"x": 2}]}})
    obj["status"] = {"phase": "Ready", "conditions": [{"type": "Ready"}]}
    pruned, dropped = prune(WIDGET_SCHEMA, obj)
    assert dropped == []
    assert pruned["status"] == obj["status"]
    assert pruned["spec"]["extra"] == obj["spec"]["extra"]


def test_declared_fields_under_preserve_unknown_are_still_pruned() -> None:
    sch = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {"strict": {"type": "object", "properties": {"a": {"type": "string"}}}},
            }
        },
    }
    pruned, dropped = prune(sch, {"spec": {"free": 1, "strict": {"a": "x", "b": "y"}}})
    assert pruned == {"spec": {"free": 1, "strict": {"a": "x"}}}
    assert dropped == ["spec.strict.b"]


def test_embedded_resource_keeps_its_type_and_object_meta() -> None:
    sch = {
        "type": "object",
        "properties": {
            "tpl": {
                "type": "object",
                "x-kubernetes-embedded-resource": True,
                "properties": {"spec": {"type": "object", "properties": {"image": {"type": "string"}}}},
            }
        },
    }
    tpl = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x"},
        "spec": {"image": "i", "junk": 1},
        "z": 0,
    }
    pruned, dropped = prune(sch, {"tpl": tpl})
    assert pruned["tpl"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x"},
        "spec": {"image": "i"},
    }
    assert dropped == ["tpl.spec.junk", "tpl.z"]


def test_object_without_properties_is_emptied() -> None:
    sch = {"type": "object", "properties": {"spec": {"type": "object"}}}
    pruned, dropped = prune(sch, {"spec": {"a": 1, "b": {"c": 2}}})
    assert pruned == {"spec": {}}
    assert dropped == ["spec.a", "spec.b"]


def test_map_values_are_pruned_with_their_schema() -> None:
    sch = {
        "type": "object",
        "properties": {
            "m": {
                "type": "object",
                "additionalProperties": {"type": "object", "properties": {"keep": {"type": "string"}}},
            }
        },
    }
    pruned, dropped = prune(sch, {"m": {"k1": {"keep": "y", "drop": "n"}}})
    assert pruned == {"m": {"k1": {"keep": "y"}}}
    assert dropped == ["m.k1.drop"]


def test_prune_then_default_then_validate_pipeline() -> None:
    raw = widget(unknown=True, replicas=None)
    pruned, dropped = prune(WIDGET_SCHEMA, raw)
    final = apply_defaults(WIDGET_SCHEMA, pruned)
    assert dropped == ["spec.unknown"]
    assert final["spec"]["replicas"] == 1
    assert validate(WIDGET_SCHEMA, final) == []


# --- structural schema checks -------------------------------------------------------------------------------


def test_realistic_schema_is_structural() -> None:
    assert structural_errors(WIDGET_SCHEMA) == []


def test_missing_types_are_reported_per_level() -> None:
    sch = {
        "type": "object",
        "properties": {
            "spec": {"properties": {"a": {"type": "string"}}},
            "list": {"type": "array", "items": {}},
            "free": {"x-kubernetes-preserve-unknown-fields": True},
            "port": {"x-kubernetes-int-or-string": True},
        },
    }
    assert structural_errors(sch, path="spec.versions[0].schema.openAPIV3Schema") == [
        "spec.versions[0].schema.openAPIV3Schema.properties[list].items.type: "
        "Required value: must not be empty for specified array items",
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: "
        "Required value: must not be empty for specified object fields",
    ]


def test_root_must_be_an_object() -> None:
    assert structural_errors({"type": "string"}) == [
        'openAPIV3Schema.type: Invalid value: "string": must be object at the root'
    ]
    assert structural_errors({}) == ["openAPIV3Schema.type: Required value: must not be empty at the root"]


def test_properties_and_additional_properties_are_exclusive() -> None:
    sch = {
        "type": "object",
        "properties": {
            "m": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            }
        },
    }
    assert structural_errors(sch) == [
        "openAPIV3Schema.properties[m].additionalProperties: Forbidden: "
        "additionalProperties and properties are mutual exclusive"
    ]


def test_array_needs_items() -> None:
    sch = {"type": "object", "properties": {"l": {"type": "array"}}}
    assert structural_errors(sch) == [
        "openAPIV3Schema.properties[l].items: Required value: must be specified"
    ]


def test_types_inside_junctors_are_not_structural_except_int_or_string() -> None:
    sch = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "anyOf": [{"type": "object"}, {"required": ["x"]}]},
            "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        },
    }
    assert structural_errors(sch) == [
        "openAPIV3Schema.properties[a].anyOf[0].type: Forbidden: must be empty to be structural"
    ]


def test_root_metadata_may_only_restrict_name() -> None:
    ok = {
        "type": "object",
        "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }
    assert structural_errors(ok) == []
    bad = {
        "type": "object",
        "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}},
    }
    assert structural_errors(bad) == [
        "openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and "
        "generateName, but metadata is implicitly specified"
    ]


def test_other_forbidden_constructs() -> None:
    sch = {
        "type": "object",
        "properties": {
            "u": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "p": {"type": "object", "x-kubernetes-preserve-unknown-fields": False},
            "e": {"x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True},
            "r": {"type": "string", "pattern": "("},
        },
    }
    errors = structural_errors(sch)
    assert (
        "openAPIV3Schema.properties[u].uniqueItems: Forbidden: uniqueItems cannot be set to true since the "
        "runtime complexity becomes quadratic"
    ) in errors
    assert (
        "openAPIV3Schema.properties[p].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
        in errors
    )
    assert (
        "openAPIV3Schema.properties[e].type: Required value: must be object if x-kubernetes-embedded-resource is true"
    ) in errors
    assert any(
        e.startswith('openAPIV3Schema.properties[r].pattern: Invalid value: "(": must be a valid')
        for e in errors
    )


def test_defaults_must_validate_against_their_schema() -> None:
    sch = copy.deepcopy(WIDGET_SCHEMA)
    sch["properties"]["spec"]["properties"]["replicas"]["default"] = "one"
    sch["properties"]["spec"]["properties"]["size"]["default"] = "huge"
    assert structural_errors(sch, path="spec.versions[0].schema.openAPIV3Schema") == [
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].default: "
        'Unsupported value: "huge": supported values: "small", "medium", "large"',
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].default: "
        'Invalid value: "string":  in body must be of type integer: "string"',
    ]


def test_defaults_must_be_pruned() -> None:
    sch = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "default": {"known": "a", "unknown": "b"},
                "properties": {"known": {"type": "string"}},
            }
        },
    }
    assert structural_errors(sch) == [
        'openAPIV3Schema.properties[spec].default: Invalid value: {"known":"a","unknown":"b"}: '
        "must not have unknown fields"
    ]


def test_defaults_are_not_checked_until_the_schema_is_structural() -> None:
    sch = {
        "type": "object",
        "properties": {"spec": {"properties": {"n": {"type": "integer", "default": "x"}}}},
    }
    errors = structural_errors(sch)
    assert errors == [
        "openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
    ]


# --- value rendering ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (1.0, "1"),
        (2.5, "2.5"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-3.25, "-3.25"),
    ],
)
def test_go_float_formatting(value: float, text: str) -> None:
    assert go_float(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (3, "3"), ("x", '"x"'), (None, "null"), ({"b": 1, "a": [1]}, '{"a":[1],"b":1}')],
)
def test_render_value(value: object, text: str) -> None:
    assert schema.render_value(value) == text

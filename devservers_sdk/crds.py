"""The DevServer and DevServerFlavor CRDs, generated from the pydantic models so the two cannot drift.

``python -m devservers_sdk.crds --write`` regenerates ``crds/*.yaml``; ``--check`` exits 1 naming the stale
files (a test runs the same comparison).

The schema is ``Model.model_json_schema(by_alias=True)`` turned into a Kubernetes *structural* schema:
``$ref``/``$defs`` inlined (structural schemas forbid ``$ref``), ``anyOf [X, null]`` reduced to ``X``,
titles dropped, descriptions kept (``kubectl explain`` shows them), ``additionalProperties: false`` dropped
(forbidden; the apiserver prunes or, with ``kubectl``'s default strict field validation, rejects unknown
fields instead). Every ``default_factory`` becomes a ``default`` so that the object the server stores
after defaulting equals what ``to_manifest()`` sends. Any JSON-schema keyword without a structural
equivalent raises, so a new model rule cannot silently vanish from the CRD.

Optional fields are **not** ``nullable``: the apiserver then drops an explicit ``null`` before validation,
which is what ``None`` means to the models (they serialise with ``exclude_none``), and nobody has to
handle stored nulls.

Enforced by the apiserver (and by the models): types; enums (``mode``, ``backend``, toleration operator
and effect, condition status, phase); ``worldSize`` 1..1000, ``nprocsPerNode`` >= 1, ``idleTimeout`` and
``defaultIdleTimeout`` >= 60; the duration pattern (refuses ``""``, ``0s``, ``90``, ``4 hours``); the
quantity pattern; node selector values and toleration values as label values; toleration keys as
qualified names;
the DevServer name (DNS-1035, at most ``MAX_NAME_LENGTH``) via ``metadata.name``; required
``owner``/``flavor``/``spec``; defaults.

No ``not``, ``oneOf`` or ``allOf`` (the generator refuses them): the API server words their failures as
``<nil>: Invalid value: "": "spec" must not validate the schema (not)``, which names no field and no fix.
A rule the schema cannot word well is a CEL rule (``x-kubernetes-validations``) whose ``message`` names the
field and the fix, as the SDK's errors do.

Not refused but warned about: fields that are accepted and have no effect (``models.IGNORED_FIELDS``:
``distributed`` beside ``mode: standalone``, ``enableSSH``). ``ignored_fields_policy`` turns them into a
ValidatingAdmissionPolicy with a ``Warn`` binding, rendered beside the CRDs, so every write that sets one
gets a ``Warning`` header (kubectl prints it) and the operator reports them in the ``FieldsIgnored``
condition. A CRD has no way of its own to warn.

Enforced by a CEL rule (``x-kubernetes-validations``, which the emulator runs with its CEL subset): the
owner (a user name as the API server reports it, at most ``MAX_OWNER_LENGTH``); flavor and claim names as
DNS-1123 subdomains, the image without spaces, and durations (``timeToLive``, ``maxTimeToLive``, at most
``MAX_DURATION_LENGTH`` characters), each with the SDK's advice as its message instead of a ``pattern`` whose
refusal quotes a regular expression; NCCL
setting keys start with ``NCCL_`` and are not ``NCCL_*_PLUGIN``, so no setting can override the distributed
contract or load a library (``propertyNames`` is not structural); at most ``MAX_NCCL_SETTINGS`` of them, no
NUL in a value.

Model-only (the SDK checks before sending; the operator sees them when it reads an object): NCCL setting
keys in upper case (``^NCCL_[A-Z0-9_]+$``: a regular expression in the CEL rule would cost more than the
apiserver's budget allows for unbounded keys); non-negative
resource quantities and ``persistentHomeSize`` (the Kubernetes pattern allows a sign), a positive
``defaultHomeSize``; requests
<= limits, whole numbers for GPUs and other extended resources, and request = limit for those; resource
names (``cpu``, ``memory``, ``ephemeral-storage``, ``hugepages-*`` or ``domain/name``) and node selector keys
(label keys): map keys again; the flavor's ``metadata.name`` (the server checks it, the model says it
first); the toleration rules (``Exists`` without value, no key only with
``Exists``, ``tolerationSeconds`` only with ``NoExecute``); timezone-aware ``expirationTime`` (the
``date-time`` format allows a missing offset); durations too long for a ``timedelta``; defaulting the
``distributed`` section when ``mode`` is distributed (a structural default cannot depend on another field).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from devservers_sdk.contract import (
    API_GROUP,
    API_VERSION,
    DEVSERVER_KIND,
    DEVSERVER_PLURAL,
    FLAVOR_KIND,
    FLAVOR_PLURAL,
    MAX_NAME_LENGTH,
    NAME_PATTERN,
)
from devservers_sdk.models import (
    IGNORED_FIELDS,
    DevServerFlavorSpec,
    DevServerSpec,
    DevServerStatus,
)

__all__ = ["CRD_DIRECTORY", "IGNORED_FIELDS_POLICY", "devserver_crd", "flavor_crd", "ignored_fields_policy", "main",
           "render"]

CRD_DIRECTORY = Path(__file__).resolve().parent.parent / "crds"
"""Where ``--write`` puts the files in a source checkout."""

_HEADER = (
    "# Generated from devservers_sdk/models.py by `python -m devservers_sdk.crds --write`. Do not edit.\n"
)

# Keywords that mean the same in JSON Schema and in a Kubernetes structural schema.
_PASSED_THROUGH = frozenset(
    {
        "type", "description", "default", "enum", "format", "pattern", "minimum", "maximum",
        "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "required",
    }
)  # fmt: skip
_NULL = {"type": "null"}
# pydantic orders keywords differently from model to model; a fixed order keeps the YAML readable and stable.
_KEY_ORDER = (
    "type", "description", "enum", "format", "pattern", "minLength", "maxLength", "minimum", "maximum",
    "anyOf", "x-kubernetes-int-or-string", "default", "required", "properties",
    "additionalProperties", "items", "minItems", "maxItems", "minProperties", "maxProperties",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-validations",
)  # fmt: skip


class _FactoryDefaults(GenerateJsonSchema):
    """Report ``default_factory`` values as defaults: the apiserver should fill in what the models do."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().get_default_value(schema)
        value = factory()  # type: ignore[call-arg]
        # A nested model's defaults are on its own fields; the server applies them below an empty object.
        return {} if isinstance(value, BaseModel) else value


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        # The field's own keys (description, default) win over the referenced model's.
        node = {**defs[ref.rsplit("/", 1)[-1]], **node}
    any_of = node.get("anyOf")
    if any_of is not None and not node.get("x-kubernetes-int-or-string"):
        choices = [choice for choice in any_of if choice != _NULL]
        if len(choices) != 1:
            raise ValueError(f"cannot express anyOf {any_of} in a structural schema")
        del node["anyOf"]
        return _structural({**choices[0], **node}, defs)

    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" or (key == "default" and value is None):
            continue
        if key == "properties":
            result[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            if value is not False:
                result[key] = _structural(value, defs) if isinstance(value, dict) else value
        elif key in _PASSED_THROUGH or key.startswith("x-kubernetes-") or key == "anyOf":
            result[key] = value
        else:
            raise ValueError(f"JSON schema keyword {key!r} has no structural equivalent (in {node})")
    return _ordered(result)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    rank = {key: index for index, key in enumerate(_KEY_ORDER)}
    return dict(sorted(node.items(), key=lambda item: rank.get(item[0], len(rank))))


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The structural openAPIV3Schema of one model, as it appears under ``spec`` or ``status``."""
    generated = model.model_json_schema(by_alias=True, schema_generator=_FactoryDefaults)
    defs = generated.pop("$defs", {})
    return _structural(generated, defs)


def _crd(
    *,
    kind: str,
    plural: str,
    scope: str,
    short_names: list[str],
    categories: list[str],
    description: str,
    properties: dict[str, Any],
    required: list[str],
    columns: list[dict[str, Any]],
    status: bool,
) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": API_VERSION,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "description": description,
                **({"required": required} if required else {}),
                "properties": {
                    "apiVersion": {"type": "string", "description": "devservers.io/v1"},
                    "kind": {"type": "string", "description": kind},
                    **properties,
                },
            }
        },
        "additionalPrinterColumns": columns,
    }
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                # Omitted when empty, as the API server stores it (omitempty): an empty list here would differ
                # from the stored object, and every `kubectl apply` of the file would say "configured".
                **({"categories": categories} if categories else {}),
            },
            "versions": [version],
        },
    }


def _column(name: str, kind: str, path: str, description: str, *, priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path, "description": description}
    if priority:
        column["priority"] = priority  # shown by `kubectl get -o wide` only
    return column


def devserver_crd() -> dict[str, Any]:
    """The DevServer CRD (namespaced, with a status subresource)."""
    spec = schema_of(DevServerSpec)
    spec = _ordered(
        {**spec, "description": "What the researcher asked for. The operator makes the cluster match it."}
    )
    status = schema_of(DevServerStatus)
    status = _ordered(
        {**status, "description": "What the operator observed, written through the status subresource."}
    )
    return _crd(
        kind=DEVSERVER_KIND,
        plural=DEVSERVER_PLURAL,
        scope="Namespaced",
        short_names=["dev"],
        categories=["devservers", "all"],
        description="A personal PyTorch development server: one pod, or a group of pods wired for torchrun.",
        properties={
            # Only name restrictions are allowed here; the server validates the rest of ObjectMeta itself.
            "metadata": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": MAX_NAME_LENGTH, "pattern": NAME_PATTERN}
                },
            },
            "spec": spec,
            "status": status,
        },
        required=["spec"],
        columns=[
            _column("Owner", "string", ".spec.owner", "Who the server belongs to."),
            _column("Flavor", "string", ".spec.flavor", "The DevServerFlavor sizing each pod."),
            _column("Mode", "string", ".spec.mode", "standalone or distributed."),
            _column("Phase", "string", ".status.phase", "Summary of the pods' state."),
            _column("Ready", "integer", ".status.readyReplicas", "Pods that are ready."),
            _column("Replicas", "integer", ".status.replicas", "Pods that should be running.", priority=1),
            _column("Image", "string", ".spec.image", "Container image, if not the flavor's.", priority=1),
            # A string, not a date: kubectl renders a date column as an age, and a future time as <invalid>.
            _column("Expires", "string", ".status.expiresAt", "When the DevServer will be deleted."),
            _column("Age", "date", ".metadata.creationTimestamp", "Time since creation."),
        ],
        status=True,
    )


def flavor_crd() -> dict[str, Any]:
    """The DevServerFlavor CRD (cluster-scoped: one menu of sizes for every namespace)."""
    spec = schema_of(DevServerFlavorSpec)
    spec = _ordered(
        {
            **spec,
            "description": "What each pod of a DevServer of this flavor gets, and its lifetime rules.",
            "default": {},
        }
    )
    return _crd(
        kind=FLAVOR_KIND,
        plural=FLAVOR_PLURAL,
        scope="Cluster",
        short_names=["devflavor"],
        # Not in the "devservers" category: kubectl expands a category before it looks up a resource, so a
        # flavor in it would show up in `kubectl get devservers`.
        categories=[],
        description="A DevServer size on the cluster's menu, chosen by name in a DevServer's spec.flavor.",
        properties={"metadata": {"type": "object"}, "spec": spec},
        required=[],
        columns=[
            _column("CPU", "string", ".spec.resources.requests.cpu", "CPU requested per pod."),
            _column("Memory", "string", ".spec.resources.requests.memory", "Memory requested per pod."),
            _column("GPU", "string", ".spec.resources.limits.nvidia\\.com/gpu", "NVIDIA GPUs per pod."),
            _column("Cost/h", "string", ".spec.costPerHour", "Cost per pod per running hour."),
            _column("Max-TTL", "string", ".spec.maxTimeToLive", "Longest lifetime allowed.", priority=1),
            _column("Image", "string", ".spec.defaultImage", "Default image.", priority=1),
            _column("Description", "string", ".spec.description", "What the flavor is for."),
        ],
        status=False,
    )


IGNORED_FIELDS_POLICY = "devservers-ignored-fields"
"""The name of the warning ValidatingAdmissionPolicy and of its binding."""


def ignored_fields_policy() -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy and its ``Warn`` binding: a warning for each field that has no effect.

    ``failurePolicy: Ignore``: a warning must never block a write, even if the policy cannot be evaluated.
    The rule's ``scope`` is the server's default, written out so that applying the file again is a no-op.
    """
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": IGNORED_FIELDS_POLICY},
        "spec": {
            "failurePolicy": "Ignore",
            "matchConstraints": {
                "resourceRules": [{"apiGroups": [API_GROUP], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                                   "resources": [DEVSERVER_PLURAL], "scope": "*"}],
            },
            "validations": [
                {"expression": ignored.rule, "message": ignored.message} for ignored in IGNORED_FIELDS.values()
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": IGNORED_FIELDS_POLICY},
        "spec": {"policyName": IGNORED_FIELDS_POLICY, "validationActions": ["Warn"]},
    }
    return [policy, binding]


def _dump(crd: dict[str, Any]) -> str:
    # A wide line keeps long patterns and descriptions on one line each: easier diffs than folded scalars.
    return _HEADER + yaml.safe_dump(crd, sort_keys=False, width=10_000, allow_unicode=True)


def render() -> dict[str, str]:
    """Every file's name (as under ``crds/``) and its YAML text: the two CRDs and the warning policy."""
    return {
        f"{API_GROUP}_{DEVSERVER_PLURAL}.yaml": _dump(devserver_crd()),
        f"{API_GROUP}_{FLAVOR_PLURAL}.yaml": _dump(flavor_crd()),
        f"{API_GROUP}_{DEVSERVER_PLURAL}-warnings.yaml": _HEADER + yaml.safe_dump_all(
            ignored_fields_policy(), sort_keys=False, width=10_000, allow_unicode=True),
    }


def stale_files(directory: Path) -> list[Path]:
    """The CRD files under ``directory`` that are missing or differ from ``render()``."""
    return [
        directory / name
        for name, text in render().items()
        if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != text
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """``--write`` regenerates the CRD files; ``--check`` returns 1 and names them when they are stale."""
    parser = argparse.ArgumentParser(
        prog="python -m devservers_sdk.crds", description="Generate or check the CRD YAML files."
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="write the CRD YAML files")
    action.add_argument("--check", action="store_true", help="exit 1 if the CRD YAML files are stale")
    parser.add_argument(
        "--dir", type=Path, default=CRD_DIRECTORY, help=f"directory (default: {CRD_DIRECTORY})"
    )
    args = parser.parse_args(argv)

    if args.write:
        args.dir.mkdir(parents=True, exist_ok=True)
        for name, text in render().items():
            (args.dir / name).write_text(text, encoding="utf-8")
            print(f"wrote {args.dir / name}")
        return 0
    stale = stale_files(args.dir)
    for path in stale:
        print(f"stale: {path}", file=sys.stderr)
    if stale:
        print("regenerate them with: python -m devservers_sdk.crds --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

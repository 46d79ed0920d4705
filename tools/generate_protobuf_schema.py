"""Generate ``devservers_sdk/localcluster/apiserver/protobuf_schema.json`` from the Kubernetes ``.proto`` files.

kubectl's imperative commands (``create namespace``, ``create secret``, ``auth whoami``, ...) send their
bodies as ``application/vnd.kubernetes.protobuf``; the emulator turns those bytes into the JSON document a
JSON client would have sent (``apiserver/protobuf.py``). To do that it needs, for every message a built-in
kind reaches: the field numbers and wire types (from ``generated.proto``) and how the Go struct turns into
JSON (from the Go struct tags next to it): the JSON name (``ref`` is ``$ref``, ``localObjectReference`` is
inlined), ``omitempty``/``omitzero``, and whether the Go field is a pointer (an absent pointer is nil, an
absent non-pointer is the zero value). Neither source alone has all of it.

Sources: the Go module cache's ``k8s.io/api``, ``k8s.io/apimachinery`` and ``k8s.io/apiextensions-apiserver``
at ``VERSION`` (``go mod download -json`` gives their folders; it downloads them through the module proxy
when the cache lacks them). Roots: every kind in ``BUILTIN_TYPES``, the kinds of the subresources that take
a body (Scale, Binding, Eviction, TokenRequest) and ``meta.k8s.io/v1`` DeleteOptions; then every message they
reach. Types whose Go JSON form is hand-written (a ``MarshalJSON`` method: Time, Quantity, IntOrString, ...)
are marked with a ``special`` name that the decoder implements; the generator refuses a reached type that
has a ``MarshalJSON`` it does not know, so a new one cannot slip through as a plain struct.

Output format (one message per line, so diffs stay readable)::

    {"source": "...", "kinds": {"v1/Secret": "core.v1.Secret", ...},
     "messages": {"core.v1.Secret": [[1, "metadata", "meta.v1.ObjectMeta", "o"], [2, "data", "bytes", "mo"], ...],
                  "meta.v1.Time": "time", ...}}

A field is ``[number, json name, type, flags]`` in Go struct order, plus the Go field name when it is not
the JSON name capitalized (Go's decoding errors name it); the type is a proto scalar (``string``, ``int32``,
``bytes``, ...) or a message name; the flags are ``r`` repeated, ``m`` map (keys are strings, the type is the
value's), ``p`` Go pointer, ``o`` omitempty, ``z`` omitzero, ``i`` inlined. Message names
drop the common package prefixes (``k8s.io.api.core.v1.Secret`` is ``core.v1.Secret``).

Run from the repository root::

    .venv/bin/python tools/generate_protobuf_schema.py

``tests/localcluster/test_protobuf.py`` fails when the committed file is stale.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "devservers_sdk" / "localcluster" / "apiserver" / "protobuf_schema.json"
VERSION = "v0.37.2"
MODULES = ("k8s.io/api", "k8s.io/apimachinery", "k8s.io/apiextensions-apiserver")

# Longest first: the first matching prefix is dropped from a proto package to name its messages.
_NAME_PREFIXES = (
    "k8s.io.apiextensions_apiserver.pkg.apis.",
    "k8s.io.apimachinery.pkg.apis.",
    "k8s.io.apimachinery.pkg.api.",
    "k8s.io.apimachinery.pkg.util.",
    "k8s.io.apimachinery.pkg.",
    "k8s.io.api.",
)

# Go types with a hand-written MarshalJSON, by short message name, and the decoder behaviour that matches it.
SPECIAL_MESSAGES = {
    "meta.v1.Time": "time",
    "meta.v1.MicroTime": "microtime",
    "meta.v1.Duration": "duration",
    "meta.v1.FieldsV1": "raw",
    "resource.Quantity": "quantity",
    "intstr.IntOrString": "intorstring",
    "runtime.RawExtension": "raw",
    "apiextensions.v1.JSON": "raw",
    "apiextensions.v1.JSONSchemaPropsOrArray": "schemaorarray",
    "apiextensions.v1.JSONSchemaPropsOrBool": "schemaorbool",
    "apiextensions.v1.JSONSchemaPropsOrStringArray": "schemaorstringarray",
}
# Request bodies of subresources and of DELETE: (apiVersion, kind).
EXTRA_KINDS = (("meta.k8s.io/v1", "DeleteOptions"),)

_SCALARS = frozenset({"double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
                      "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes"})
_PACKAGE = re.compile(r"^package\s+([\w.]+)\s*;", re.MULTILINE)
_IMPORT = re.compile(r'^import\s+"([^"]+)"\s*;', re.MULTILINE)
_MESSAGE = re.compile(r"^message\s+(\w+)\s*\{(.*?)^\}", re.MULTILINE | re.DOTALL)
_FIELD = re.compile(r"^\s*(optional|repeated)?\s*(map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;",
                    re.MULTILINE)
_GO_STRUCT = re.compile(r"^type\s+(\w+)\s+struct\s*\{[ \t]*\n(.*?)^\}", re.MULTILINE | re.DOTALL)
_GO_FIELD = re.compile(r"^\s*(?:(\w+)\s+)?([\w.*\[\]]+)\s+`([^`]*)`", re.MULTILINE)
_GO_SLICE_ALIAS = re.compile(r"^type\s+(\w+)\s+\[\]\w+\s*$", re.MULTILINE)
_GO_MARSHAL_JSON = re.compile(r"^func\s+\(\w+\s+\*?(\w+)\)\s+MarshalJSON\(", re.MULTILINE)
_GO_GROUP_NAME = re.compile(r'^const\s+GroupName\s*=\s*"([^"]*)"', re.MULTILINE)
_TAG = re.compile(r'(\w+):"([^"]*)"')


class SourcesUnavailable(RuntimeError):
    """The .proto files of the pinned modules are not in the Go module cache and cannot be downloaded."""


@dataclass
class GoField:
    go_name: str
    json_name: str
    omitempty: bool
    omitzero: bool
    inline: bool
    pointer: bool


@dataclass
class Package:
    """One Go package with a generated.proto: its messages and the Go facts about their fields."""

    proto_package: str
    group: str | None
    messages: dict[str, list[tuple[str, str, str, int]]]  # name -> [(label, type, proto name, number)]
    go_fields: dict[str, dict[str, GoField]]  # Go type -> proto field name -> facts
    slice_aliases: set[str]
    custom_json: set[str]


def module_dirs(*, offline: bool = False) -> dict[str, Path]:
    """The folder of each module in ``MODULES`` at ``VERSION`` (with ``offline``, only from the cache)."""
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    if offline:
        env["GOPROXY"] = "off"
    try:
        result = subprocess.run(["go", "mod", "download", "-json", *(f"{m}@{VERSION}" for m in MODULES)],
                                capture_output=True, text=True, env=env, cwd="/", timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourcesUnavailable(f"cannot run `go mod download`: {exc}") from exc
    decoder = json.JSONDecoder()
    text, position, dirs = result.stdout, 0, {}
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        info, position = decoder.raw_decode(text, position)
        if info.get("Error") or not info.get("Dir"):
            raise SourcesUnavailable(f"{info.get('Path')}@{VERSION}: {info.get('Error') or 'no Dir'}")
        dirs[info["Path"]] = Path(info["Dir"])
    missing = [m for m in MODULES if m not in dirs or not dirs[m].is_dir()]
    if missing:
        raise SourcesUnavailable(f"`go mod download` gave no folder for {', '.join(missing)}: {result.stderr.strip()}")
    return dirs


def short_name(proto_package: str, message: str) -> str:
    for prefix in _NAME_PREFIXES:
        if proto_package.startswith(prefix):
            return f"{proto_package[len(prefix):]}.{message}"
    raise ValueError(f"unexpected proto package {proto_package}")


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", text)


def _read_package(directory: Path) -> tuple[Package, list[str]]:
    proto = (directory / "generated.proto").read_text(encoding="utf-8")
    code = _strip_comments(proto)
    package_match = _PACKAGE.search(code)
    if package_match is None:
        raise ValueError(f"{directory}/generated.proto has no package line")
    messages = {}
    for match in _MESSAGE.finditer(code):
        fields = []
        for field in _FIELD.finditer(match.group(2)):
            label, type_name, map_key, map_value, name, number = field.groups()
            if map_key:
                if map_key != "string":
                    raise ValueError(f"{match.group(1)}.{name}: map keys other than string are not supported")
                fields.append(("map", map_value, name, int(number)))
            else:
                fields.append((label or "optional", type_name, name, int(number)))
        messages[match.group(1)] = fields
    go_fields: dict[str, dict[str, GoField]] = {}
    slice_aliases: set[str] = set()
    custom_json: set[str] = set()
    group = None
    for source in sorted(directory.glob("*.go")):
        if source.name.endswith("_test.go") or source.name.startswith(("zz_generated", "generated.")):
            continue
        go = source.read_text(encoding="utf-8")
        slice_aliases.update(_GO_SLICE_ALIAS.findall(go))
        custom_json.update(_GO_MARSHAL_JSON.findall(go))
        group_match = _GO_GROUP_NAME.search(go)
        if group_match:
            group = group_match.group(1)
        for struct in _GO_STRUCT.finditer(_strip_comments(go)):
            fields_of = go_fields.setdefault(struct.group(1), {})
            for go_name, go_type, tag in _GO_FIELD.findall(struct.group(2)):
                tags = dict(_TAG.findall(tag))
                if "protobuf" not in tags:
                    continue
                type_base = go_type.lstrip("*").rsplit(".", 1)[-1]
                # go-to-protobuf names an embedded field after its type when the tag gives no name=.
                proto_name = next((p[5:] for p in tags["protobuf"].split(",") if p.startswith("name=")),
                                  (go_name or type_base)[:1].lower() + (go_name or type_base)[1:])
                json_name, *options = tags.get("json", "").split(",")
                # encoding/json promotes the fields of an embedded struct whose tag names no key (",inline" is
                # only a convention); a named field without a key keeps its Go name.
                inline = go_name == "" and json_name == ""
                if not json_name and not inline:
                    json_name = go_name or type_base
                fields_of[proto_name] = GoField(go_name=go_name or type_base, json_name=json_name, omitempty="omitempty" in options,
                                                omitzero="omitzero" in options, inline=inline,
                                                pointer=go_type.startswith("*"))
    package = Package(package_match.group(1), group, messages, go_fields, slice_aliases, custom_json)
    return package, _IMPORT.findall(code)


def _load_packages(dirs: dict[str, Path], roots: list[Path]) -> dict[Path, Package]:
    """The root folders' packages and every package they import, transitively, by folder."""
    packages: dict[Path, Package] = {}
    queue = deque(roots)
    seen: set[Path] = set()
    while queue:
        directory = queue.popleft()
        if directory in seen:
            continue
        seen.add(directory)
        package, imports = _read_package(directory)
        packages[directory] = package
        for path in imports:
            module = next((m for m in sorted(dirs, key=len, reverse=True) if path.startswith(m + "/")), None)
            if module is None:
                raise ValueError(f"{directory}/generated.proto imports {path}, outside {', '.join(MODULES)}")
            queue.append(dirs[module] / Path(path[len(module) + 1:]).parent)
    return packages


def _api_folders(dirs: dict[str, Path]) -> list[Path]:
    folders = sorted(p.parent for p in dirs["k8s.io/api"].glob("*/*/generated.proto"))
    folders.append(dirs["k8s.io/apimachinery"] / "pkg" / "apis" / "meta" / "v1")
    folders.append(dirs["k8s.io/apiextensions-apiserver"] / "pkg" / "apis" / "apiextensions" / "v1")
    return folders


def root_kinds() -> list[tuple[str, str]]:
    """(apiVersion, kind) of every body the emulator may receive for a built-in resource."""
    sys.path.insert(0, str(REPO))
    from devservers_sdk.localcluster.apiserver.discovery import _SUBRESOURCES
    from devservers_sdk.localcluster.apiserver.resources import BUILTIN_TYPES

    kinds = {(rt.api_version, rt.kind) for rt in BUILTIN_TYPES}
    for sub in _SUBRESOURCES.values():
        takes_body = bool({"create", "update"} & set(sub.verbs))
        if sub.kind and takes_body and not sub.kind.endswith("Options"):
            kinds.add((f"{sub.group}/{sub.version}" if sub.group else (sub.version or "v1"), sub.kind))
    kinds.update(EXTRA_KINDS)
    return sorted(kinds)


def build(dirs: dict[str, Path] | None = None) -> dict[str, Any]:
    dirs = dirs or module_dirs()
    folders = _api_folders(dirs)
    by_folder = _load_packages(dirs, folders)
    packages = {package.proto_package: package for package in by_folder.values()}
    by_group_version: dict[str, Package] = {}
    for folder in folders:
        package = by_folder[folder]
        if package.group is not None:
            by_group_version[f"{package.group}/{folder.name}" if package.group else folder.name] = package

    kinds: dict[str, str] = {}
    queue: deque[tuple[Package, str]] = deque()
    for api_version, kind in root_kinds():
        root = by_group_version.get(api_version)
        if root is None or kind not in root.messages:
            raise ValueError(f"no proto message for {api_version} {kind}")
        kinds[f"{api_version}/{kind}"] = short_name(root.proto_package, kind)
        queue.append((root, kind))

    messages: dict[str, Any] = {}
    while queue:
        package, name = queue.popleft()
        short = short_name(package.proto_package, name)
        if short in messages:
            continue
        if short in SPECIAL_MESSAGES:
            messages[short] = SPECIAL_MESSAGES[short]
            continue
        if name in package.custom_json:
            raise ValueError(f"{short} has a hand-written MarshalJSON: add it to SPECIAL_MESSAGES and the decoder")
        proto_fields = package.messages[name]
        if name in package.slice_aliases:
            if [(label, proto) for label, _, proto, _ in proto_fields] != [("repeated", "items")]:
                raise ValueError(f"{short} is a Go slice type but its message is not `repeated items`")
            messages[short] = ["items", proto_fields[0][1]]
            continue
        go_fields = package.go_fields.get(name, {} if not proto_fields else None)  # `struct{}` has no block
        if go_fields is None:
            raise ValueError(f"no Go struct for message {short}")
        fields = []
        for label, type_name, proto_name, number in proto_fields:
            go = go_fields.get(proto_name)
            if go is None:
                raise ValueError(f"no Go struct tag names protobuf field {short}.{proto_name}")
            if go.json_name == "-":
                continue
            if type_name in _SCALARS:
                field_type = type_name
            else:
                target_package, target = _resolve(packages, package, type_name)
                field_type = short_name(target_package.proto_package, target)
                queue.append((target_package, target))
            flags = "".join(flag for flag, on in (("r", label == "repeated"), ("m", label == "map"),
                                                  ("p", go.pointer), ("o", go.omitempty), ("z", go.omitzero),
                                                  ("i", go.inline)) if on)
            field: list[Any] = [number, go.json_name, field_type, flags]
            if go.go_name != go.json_name[:1].upper() + go.json_name[1:]:
                field.append(go.go_name)  # Go's decoder errors name the Go field
            fields.append(field)
        messages[short] = fields
    return {"source": ", ".join(f"{m} {VERSION}" for m in MODULES), "kinds": dict(sorted(kinds.items())),
            "messages": dict(sorted(messages.items()))}


def _resolve(packages: dict[str, Package], current: Package, type_name: str) -> tuple[Package, str]:
    if type_name.startswith("."):
        package_name, _, message = type_name[1:].rpartition(".")
        package = packages.get(package_name)
        if package is None or message not in package.messages:
            raise ValueError(f"unknown proto type {type_name}")
        return package, message
    if type_name in current.messages:
        return current, type_name
    raise ValueError(f"unknown proto type {type_name} in {current.proto_package}")


def render(document: dict[str, Any]) -> str:
    def line(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    kinds = ",\n".join(f"{line(k)}:{line(v)}" for k, v in document["kinds"].items())
    messages = ",\n".join(f"{line(k)}:{line(v)}" for k, v in document["messages"].items())
    return f'{{"source":{line(document["source"])},\n"kinds":{{\n{kinds}}},\n"messages":{{\n{messages}}}}}\n'


def main() -> int:
    try:
        document = build()
    except SourcesUnavailable as exc:
        print(f"error: {exc}; install Go and make the module proxy reachable, then run this again", file=sys.stderr)
        return 1
    OUTPUT.write_text(render(document), encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}: {len(document['kinds'])} kinds, {len(document['messages'])} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())

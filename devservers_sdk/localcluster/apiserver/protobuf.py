"""Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``) turned into JSON documents.

Why: client-go's typed clients send protobuf for built-in kinds, so kubectl's imperative commands do
(``create namespace|secret|configmap|deployment|serviceaccount|role|rolebinding|token``, ``auth whoami``,
``auth can-i``). A real kube-apiserver accepts protobuf for every built-in kind; custom resources it cannot
decode from protobuf (the apiextensions server has no Go type to unmarshal into).

What: a body is the 4-byte magic ``k8s\\x00`` and a ``runtime.Unknown`` message (``typeMeta`` with
``apiVersion``/``kind``, ``raw``, ``contentEncoding``, ``contentType``), and ``raw`` is the object's own
message. Like the real server we decode ``raw`` as protobuf whatever ``contentType`` says, ignore
``contentEncoding``, and take a missing ``apiVersion``/``kind`` from the URL. The object's message becomes
the JSON document that a JSON client holding the same Go object would have sent (the emulator's one input
form), following what Go does in two steps:

* protobuf into the Go struct (gogo-generated ``Unmarshal``): unknown field numbers are skipped, the last
  occurrence of a scalar wins, repeated scalars may be packed or not, an absent pointer stays nil and an
  absent non-pointer field is its zero value;
* the Go struct into JSON (``encoding/json`` and the hand-written ``MarshalJSON`` of apimachinery types):
  ``omitempty`` drops false/0/""/empty lists and maps/nil pointers but never a struct, ``omitzero`` drops a
  zero value, a nil slice or map without ``omitempty`` is ``null``, ``[]byte`` is base64, map keys are
  sorted, embedded structs are inlined. ``Time`` is RFC 3339 in seconds (protobuf nanoseconds are dropped,
  as ``Time.Unmarshal`` does) and ``null`` when zero; ``MicroTime`` keeps microseconds; ``Duration`` is Go's
  ``1h2m3s``; ``Quantity`` is its string; ``IntOrString`` is a number or a string; ``RawExtension``,
  ``FieldsV1`` and apiextensions ``JSON`` are the JSON they hold.

The per-message facts (field numbers, JSON names, flags) come from ``protobuf_schema.json``, generated from
the ``.proto`` files and Go struct tags of k8s.io/api by ``tools/generate_protobuf_schema.py``.

Deliberate difference from a real server: clients that send protobuf also *ask* for protobuf answers
(``Accept: application/vnd.kubernetes.protobuf, application/json``); the emulator always answers JSON. Both
kubectl and the official Python client take the answer's Content-Type at its word and decode JSON, so only
bytes on the wire differ, never what a client sees.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import math
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
SCHEMA_FILE = Path(__file__).with_name("protobuf_schema.json")

VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
_MASK64 = (1 << 64) - 1
# Go's zero time.Time is 0001-01-01T00:00:00Z; protobuf clients send it as empty bytes, but its Unix seconds
# decode to the same zero value.
_GO_ZERO_TIME_SECONDS = -62135596800
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_VARINT_TYPES = frozenset({"int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool"})
_FIXED32_TYPES = frozenset({"fixed32", "sfixed32", "float"})
_FIXED64_TYPES = frozenset({"fixed64", "sfixed64", "double"})
_SCALAR_TYPES = _VARINT_TYPES | _FIXED32_TYPES | _FIXED64_TYPES | {"string", "bytes"}


class ProtobufError(ValueError):
    """A protobuf body the server refuses; ``str()`` is the message, worded like the real server's."""

    code = 400
    reason = "BadRequest"


class UnknownKindError(ProtobufError):
    """The body names a kind that has no protobuf message here (not a kind the emulator serves)."""


class CustomResourceError(ProtobufError):
    """A custom resource sent as protobuf (see ``custom_resource_error``)."""

    code = 415
    reason = "UnsupportedMediaType"


@dataclass(frozen=True)
class Envelope:
    """The ``runtime.Unknown`` wrapper of a protobuf body."""

    api_version: str
    kind: str
    raw: bytes
    content_encoding: str
    content_type: str


@dataclass(frozen=True)
class _Field:
    number: int
    json_name: str
    type: str
    repeated: bool
    map: bool
    pointer: bool
    omitempty: bool
    omitzero: bool
    inline: bool
    go_name: str


@functools.cache
def _schema() -> tuple[dict[str, str], dict[str, Any]]:
    document = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    messages: dict[str, Any] = {}
    for name, entry in document["messages"].items():
        if isinstance(entry, list) and (not entry or isinstance(entry[0], list)):
            messages[name] = tuple(
                _Field(number, json_name, type_name, "r" in flags, "m" in flags, "p" in flags, "o" in flags,
                       "z" in flags, "i" in flags, go_name[0] if go_name else json_name[:1].upper() + json_name[1:])
                for number, json_name, type_name, flags, *go_name in entry)
        else:
            messages[name] = entry  # a special name ("time") or ["items", element type]
    return document["kinds"], messages


def message_for(api_version: str, kind: str) -> str | None:
    """The schema's message name for a kind (``("v1", "Secret")`` -> ``core.v1.Secret``), or None."""
    return _schema()[0].get(f"{api_version}/{kind}")


def known_kinds() -> dict[str, str]:
    """``apiVersion/kind`` -> message name, for every kind whose protobuf bodies can be decoded."""
    return dict(_schema()[0])


# -- wire format -----------------------------------------------------------------------------------


def read_varint(data: bytes, position: int) -> tuple[int, int]:
    """The unsigned varint at ``position`` and the position after it."""
    result = shift = 0
    while True:
        if position >= len(data):
            raise ProtobufError("unexpected EOF")
        byte = data[position]
        position += 1
        if shift >= 64:
            raise ProtobufError("proto: integer overflow")
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _MASK64, position
        shift += 7


def iter_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field of a message: an int, or bytes for LEN and fixed."""
    position = 0
    while position < len(data):
        key, position = read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number <= 0 or number > 0x1FFFFFFF:
            raise ProtobufError(f"proto: illegal tag {number} (wire type {wire_type})")
        value: int | bytes
        if wire_type == VARINT:
            value, position = read_varint(data, position)
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            if position + size > len(data):
                raise ProtobufError("unexpected EOF")
            value, position = data[position:position + size], position + size
        elif wire_type == LEN:
            length, position = read_varint(data, position)
            if length > len(data) - position:
                raise ProtobufError("unexpected EOF" if length < 1 << 63 else
                                    "proto: negative length found during unmarshaling")
            value, position = data[position:position + length], position + length
        else:
            raise ProtobufError(f"proto: illegal wireType {wire_type}")
        yield number, wire_type, value


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _scalar(type_name: str, wire_type: int, value: int | bytes, where: str) -> Any:
    """One scalar of proto type ``type_name`` as Go would hold it, from one field occurrence."""
    if type_name == "string":
        _expect(wire_type, LEN, where)
        assert isinstance(value, bytes)
        return value.decode("utf-8", errors="replace")  # encoding/json writes invalid UTF-8 as U+FFFD
    if type_name == "bytes":
        _expect(wire_type, LEN, where)
        return value
    if type_name in _VARINT_TYPES:
        _expect(wire_type, VARINT, where)
        assert isinstance(value, int)
        if type_name == "bool":
            return value != 0
        if type_name == "int32":
            return _signed(value, 32)
        if type_name == "int64":
            return _signed(value, 64)
        if type_name == "uint32":
            return value & 0xFFFFFFFF
        if type_name in ("sint32", "sint64"):
            bits = 32 if type_name == "sint32" else 64
            return _signed((value >> 1) ^ -(value & 1), bits)
        return value
    if type_name in _FIXED32_TYPES or type_name in _FIXED64_TYPES:
        _expect(wire_type, FIXED32 if type_name in _FIXED32_TYPES else FIXED64, where)
        assert isinstance(value, bytes)
        code = {"fixed32": "<I", "sfixed32": "<i", "float": "<f", "fixed64": "<Q", "sfixed64": "<q",
                "double": "<d"}[type_name]
        number = struct.unpack(code, value)[0]
        if isinstance(number, float) and not math.isfinite(number):
            raise ProtobufError(f"json: unsupported value: {number} (field {where})")
        return number
    raise ProtobufError(f"unsupported proto type {type_name} for field {where}")


def _expect(wire_type: int, expected: int, where: str) -> None:
    if wire_type != expected:
        raise ProtobufError(f"proto: wrong wireType = {wire_type} for field {where}")


def _packed(type_name: str, data: bytes, where: str) -> list[Any]:
    values: list[Any] = []
    position = 0
    if type_name in _VARINT_TYPES:
        while position < len(data):
            value, position = read_varint(data, position)
            values.append(_scalar(type_name, VARINT, value, where))
        return values
    size = 4 if type_name in _FIXED32_TYPES else 8
    if len(data) % size:
        raise ProtobufError("unexpected EOF")
    wire_type = FIXED32 if size == 4 else FIXED64
    return [_scalar(type_name, wire_type, data[i:i + size], where) for i in range(0, len(data), size)]


# -- envelope and objects --------------------------------------------------------------------------


def read_envelope(body: bytes) -> Envelope:
    """Split a protobuf body into its ``runtime.Unknown`` parts; raise ProtobufError as the real server words it."""
    if not body:
        raise ProtobufError("empty data")
    if not body.startswith(MAGIC):
        prefix = " ".join(str(byte) for byte in MAGIC)
        raise ProtobufError(f"provided data does not appear to be a protobuf message, expected prefix [{prefix}]")
    if len(body) == len(MAGIC):
        raise ProtobufError("empty body")
    api_version = kind = content_encoding = content_type = ""
    raw = b""
    for number, wire_type, value in iter_fields(body[len(MAGIC):]):
        if number == 1:
            _expect(wire_type, LEN, "TypeMeta")
            assert isinstance(value, bytes)
            for inner, inner_type, inner_value in iter_fields(value):
                if inner == 1:
                    api_version = _scalar("string", inner_type, inner_value, "APIVersion")
                elif inner == 2:
                    kind = _scalar("string", inner_type, inner_value, "Kind")
        elif number == 2:
            raw = _scalar("bytes", wire_type, value, "Raw")
        elif number == 3:
            content_encoding = _scalar("string", wire_type, value, "ContentEncoding")
        elif number == 4:
            content_type = _scalar("string", wire_type, value, "ContentType")
    return Envelope(api_version, kind, raw, content_encoding, content_type)


def decode_object(body: bytes, *, api_version: str, kind: str) -> dict[str, Any]:
    """The JSON document of a protobuf request body for a resource of ``api_version``/``kind``.

    The envelope's own apiVersion/kind win; the arguments (the URL's) fill in what it omits. A body of
    another kind is refused, as the real server refuses a ConfigMap POSTed to ``/secrets``.

    Raises:
        ProtobufError: with the real server's 400 message (UnknownKindError for a kind not served).
    """
    try:
        envelope = read_envelope(body)
    except ProtobufError as exc:
        raise ProtobufError(f"the object provided is unrecognized (must be of type {kind}): {exc} "
                            f"({_summary(body)})") from exc
    actual_version = envelope.api_version or api_version
    actual_kind = envelope.kind or kind
    prefix = f'{actual_kind} in version "{actual_version.rpartition("/")[2]}" cannot be handled as a {kind}: '
    message = message_for(actual_version, actual_kind)
    if message is None:
        raise UnknownKindError(f'{prefix}no kind "{actual_kind}" is registered for version "{actual_version}" '
                               f'in scheme "pkg/runtime/scheme.go:111"')
    if (actual_version, actual_kind) != (api_version, kind):
        internal = api_version.rpartition("/")[0].split(".")[0] or "core"
        raise ProtobufError(f"{prefix}converting ({actual_version.rpartition('/')[2]}.{actual_kind}) to "
                            f"({internal}.{kind}): unknown conversion")
    try:
        document = decode_message(envelope.raw, message)
    except ProtobufError as exc:
        raise ProtobufError(prefix + str(exc)) from exc
    return {"kind": actual_kind, "apiVersion": actual_version, **document}


def decode_delete_options(body: bytes) -> dict[str, Any]:
    """A protobuf DeleteOptions body (client-go's typed ``Delete``), whatever group its envelope names."""
    try:
        envelope = read_envelope(body)
        if envelope.kind not in ("", "DeleteOptions"):
            raise ProtobufError(f'no kind "{envelope.kind}" is registered as delete options')
        options: dict[str, Any] = decode_message(envelope.raw, "meta.v1.DeleteOptions")
        return options
    except ProtobufError as exc:
        raise ProtobufError(f"the object provided is unrecognized (must be of type DeleteOptions): {exc}") from exc


def custom_resource_error(body: bytes, *, api_version: str, kind: str, field_validation: str) -> ProtobufError:
    """What to answer a custom resource sent as protobuf.

    The apiextensions server lists protobuf among a custom resource's media types (for the objects it
    answers with) but has no Go type to decode one into. With ``fieldValidation=Ignore`` kube-apiserver
    1.37 answers 400 with the message below; with the default (``Warn``) or ``Strict`` it looks up a strict
    protobuf decoder that does not exist, the handler panics and the client sees the connection close with
    no answer. There the emulator deliberately answers 415 with a message that says what to do instead.
    """
    if field_validation == "Ignore":
        try:
            envelope = read_envelope(body)
        except ProtobufError as exc:
            return ProtobufError(f"the object provided is unrecognized (must be of type {kind}): {exc} "
                                 f"({_summary(body)})")
        actual_version = envelope.api_version or api_version
        return ProtobufError(f'{envelope.kind or kind} in version "{actual_version.rpartition("/")[2]}" cannot be '
                             f"handled as a {kind}: Object 'Kind' is missing in 'object has no kind field '")
    return CustomResourceError(
        f"the body of the request was in an unknown format - accepted media types include: application/json, "
        f"application/yaml (custom resource {kind} {api_version} cannot be sent as {CONTENT_TYPE}; send it as "
        f"application/json)")


def _summary(body: bytes, limit: int = 30) -> str:
    """apiserver's ``summarizeData``: the start of the body, as text if it looks like JSON, else in hex."""
    if not body:
        return "<empty>"
    shown, more = body[:limit], " ..." if len(body) > limit else ""
    if body[:1] == b"{":
        return shown.decode("utf-8", errors="replace") + more
    return shown.hex() + more


def decode_message(data: bytes, message: str) -> Any:
    """The JSON value of one protobuf message of schema message ``message``."""
    entry = _schema()[1].get(message)
    if entry is None:
        raise ProtobufError(f"no protobuf message {message} in {SCHEMA_FILE.name}")
    if isinstance(entry, str):
        return _SPECIAL[entry](data, message)
    if isinstance(entry, list):  # a Go slice type (``type ExtraValue []string``): JSON is the list itself
        values = _repeated(entry[1], _occurrences(data).get(1, []), "Items")
        return values or None  # a nil slice marshals as null
    occurrences = _occurrences(data)
    document: dict[str, Any] = {}
    for field in entry:
        _emit(document, field, occurrences.get(field.number), message)
    return document


def _occurrences(data: bytes) -> dict[int, list[tuple[int, int | bytes]]]:
    found: dict[int, list[tuple[int, int | bytes]]] = {}
    for number, wire_type, value in iter_fields(data):
        found.setdefault(number, []).append((wire_type, value))
    return found


def _emit(document: dict[str, Any], field: _Field, found: list[tuple[int, int | bytes]] | None,
          message: str) -> None:
    """Put one Go struct field into ``document`` the way encoding/json would, or leave it out."""
    where = field.go_name
    may_omit = field.omitempty or field.omitzero
    if field.map or field.repeated:
        value: Any = None  # absent is a nil map or slice: null, or nothing with omitempty
        if found:
            value = _map(field.type, found, where) if field.map else _repeated(field.type, found, where)
        if not (value or not may_omit):
            return
        document[field.json_name] = value
        return
    if field.type not in _SCALAR_TYPES:
        if found is None and field.pointer:
            if not may_omit and not field.inline:
                document[field.json_name] = None
            return
        data = b"".join(_message_bytes(wire_type, raw, where) for wire_type, raw in found or [])
        value = decode_message(data, field.type)
        if field.inline:
            if isinstance(value, dict):
                document.update(value)
            return
        if _is_slice_type(field.type):
            if not value and field.omitempty:
                return
        elif field.omitzero and not field.pointer and value == decode_message(b"", field.type):
            return  # omitempty never drops a struct; omitzero drops a zero one
        document[field.json_name] = value
        return
    if found:
        value = _scalar(field.type, *found[-1], where)
        if field.type == "bytes":
            value = base64.b64encode(value).decode("ascii")
    elif field.pointer or field.type == "bytes":
        value = None  # a nil pointer, or a nil []byte: both marshal as null
    else:
        value = _ZERO.get(field.type, 0)
    if not field.pointer and may_omit and _is_empty(value):
        return
    if field.pointer and value is None and may_omit:
        return
    document[field.json_name] = value


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value is False or (isinstance(value, int | float) and value == 0)


def _is_slice_type(message: str) -> bool:
    return isinstance(_schema()[1].get(message), list)


_ZERO: dict[str, Any] = {"string": "", "bool": False, "double": 0.0, "float": 0.0}


def _message_bytes(wire_type: int, value: int | bytes, where: str) -> bytes:
    _expect(wire_type, LEN, where)
    assert isinstance(value, bytes)
    return value


def _repeated(type_name: str, found: list[tuple[int, int | bytes]], where: str) -> list[Any]:
    values: list[Any] = []
    for wire_type, value in found:
        if type_name in ("string", "bytes"):
            item = _scalar(type_name, wire_type, value, where)
            values.append(base64.b64encode(item).decode("ascii") if type_name == "bytes" else item)
        elif type_name in _SCALAR_TYPES:
            if wire_type == LEN:
                assert isinstance(value, bytes)
                values.extend(_packed(type_name, value, where))
            else:
                values.append(_scalar(type_name, wire_type, value, where))
        else:
            values.append(decode_message(_message_bytes(wire_type, value, where), type_name))
    return values


def _map(type_name: str, found: list[tuple[int, int | bytes]], where: str) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    is_scalar = type_name in _SCALAR_TYPES
    for wire_type, value in found:
        key, item_bytes, item = "", b"", None
        for number, inner_type, inner_value in iter_fields(_message_bytes(wire_type, value, where)):
            if number == 1:
                key = _scalar("string", inner_type, inner_value, where)
            elif number == 2:
                if is_scalar:
                    item = _scalar(type_name, inner_type, inner_value, where)
                else:
                    item_bytes = _message_bytes(inner_type, inner_value, where)
        if is_scalar:
            if item is None:
                item = b"" if type_name == "bytes" else _ZERO.get(type_name, 0)
            entries[key] = base64.b64encode(item).decode("ascii") if type_name == "bytes" else item
        else:
            item = decode_message(item_bytes, type_name)
            # gogo starts a map value as `&ExtraValue{}`: an empty slice type there is [], not null
            entries[key] = [] if item is None and _is_slice_type(type_name) else item
    return dict(sorted(entries.items()))  # encoding/json writes map keys sorted


# -- types with a hand-written MarshalJSON ----------------------------------------------------------


def _fields_of(data: bytes) -> dict[int, tuple[int, int | bytes]]:
    """The last occurrence of each field number (scalar semantics)."""
    return {number: (wire_type, value) for number, wire_type, value in iter_fields(data)}


def _int_field(fields: dict[int, tuple[int, int | bytes]], number: int, type_name: str, where: str) -> int:
    if number not in fields:
        return 0
    return int(_scalar(type_name, *fields[number], where))


def _time(data: bytes, message: str, *, micro: bool = False) -> str | None:
    if not data:
        return None  # Time.Marshal writes a zero time as no bytes; MarshalJSON writes it as null
    fields = _fields_of(data)
    seconds = _int_field(fields, 1, "int64", "Seconds")
    nanos = _int_field(fields, 2, "int32", "Nanos") if micro else 0
    micros = int(nanos) // 1000 if micro else 0
    if seconds == _GO_ZERO_TIME_SECONDS and micros == 0:
        return None
    try:
        moment = _EPOCH + datetime.timedelta(seconds=seconds, microseconds=micros)
    except OverflowError as exc:
        raise ProtobufError(f"{message}: {seconds} seconds is outside the years 1-9999") from exc
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:" \
           f"{moment.second:02d}"
    return f"{text}.{moment.microsecond:06d}Z" if micro else f"{text}Z"


def go_duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String()``: ``1h2m3.5s``, ``1.5ms``, ``0s``."""
    if nanoseconds == 0:
        return "0s"
    sign, value = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)
    if value < 1_000_000_000:
        for limit, unit, precision in ((1_000, "ns", 0), (1_000_000, "µs", 3), (1_000_000_000, "ms", 6)):
            if value < limit:
                return sign + _fraction(value, precision) + unit
    seconds, rest = divmod(value, 1_000_000_000)
    text = f"{seconds % 60}{_fraction(rest, 9)[1:] if rest else ''}s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes // 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


def _fraction(value: int, precision: int) -> str:
    """``value / 10**precision`` with the fraction's trailing zeros (and a bare point) dropped."""
    if precision == 0:
        return str(value)
    whole, fraction = divmod(value, 10 ** precision)
    digits = f"{fraction:0{precision}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def _duration(data: bytes, message: str) -> str:
    return go_duration(_int_field(_fields_of(data), 1, "int64", "Duration"))


def _quantity(data: bytes, message: str) -> str:
    fields = _fields_of(data)
    text = _scalar("string", *fields[1], "String") if 1 in fields else ""
    return text or "0"  # the zero Quantity marshals as "0"


def _int_or_string(data: bytes, message: str) -> int | str:
    fields = _fields_of(data)
    if _int_field(fields, 1, "int64", "Type") == 1:
        return _scalar("string", *fields[3], "StrVal") if 3 in fields else ""
    return _int_field(fields, 2, "int32", "IntVal")


def _raw_json(data: bytes, message: str) -> Any:
    fields = _fields_of(data)
    raw = _scalar("bytes", *fields[1], "Raw") if 1 in fields else b""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProtobufError(f"{message} holds bytes that are not JSON: {exc}") from exc


def _schema_or_array(data: bytes, message: str) -> Any:
    occurrences = _occurrences(data)
    schemas = _repeated("apiextensions.v1.JSONSchemaProps", occurrences.get(2, []), "JSONSchemas")
    if schemas:
        return schemas
    return _optional_schema(occurrences.get(1), message)


def _schema_or_bool(data: bytes, message: str) -> Any:
    occurrences = _occurrences(data)
    if 2 in occurrences:
        return _optional_schema(occurrences[2], message)
    if 1 not in occurrences:
        return False
    wire_type, value = occurrences[1][-1]
    return bool(_scalar("bool", wire_type, value, "Allows"))


def _schema_or_string_array(data: bytes, message: str) -> Any:
    occurrences = _occurrences(data)
    properties = _repeated("string", occurrences.get(2, []), "Property")
    if properties:
        return properties
    return _optional_schema(occurrences.get(1), message)


def _optional_schema(found: list[tuple[int, int | bytes]] | None, message: str) -> Any:
    if not found:
        return None
    data = b"".join(_message_bytes(wire_type, value, "Schema") for wire_type, value in found)
    return decode_message(data, "apiextensions.v1.JSONSchemaProps")


_SPECIAL: dict[str, Callable[[bytes, str], Any]] = {
    "time": _time,
    "microtime": functools.partial(_time, micro=True),
    "duration": _duration,
    "quantity": _quantity,
    "intorstring": _int_or_string,
    "raw": _raw_json,
    "schemaorarray": _schema_or_array,
    "schemaorbool": _schema_or_bool,
    "schemaorstringarray": _schema_or_string_array,
}

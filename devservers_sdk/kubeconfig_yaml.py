"""Kubeconfig files read without importing PyYAML, for ``devctl list``'s fast path.

Why: ``import yaml`` costs ~11 ms (its modules compile a dozen regular expressions when imported), an
eighth of a whole ``devctl list``, whose budget is 1.5x ``kubectl get``. Parsing itself is cheap.

Kubeconfigs are written by a handful of tools (kubectl and client-go, PyYAML's ``safe_dump`` in the aws,
gcloud and az CLIs and in ``devctl local up``, kind, minikube) in one plain style: block mappings and
sequences, one-line plain or quoted scalars, ``{}`` and ``[]`` for empty collections. ``load`` reads that
style and returns exactly what ``yaml.safe_load`` returns for it. On anything else (comments after content,
anchors, tags, block scalars, escapes, scalars continued on another line, flow collections with content,
plain scalars PyYAML would read as numbers, dates or merge keys, tabs, non-ASCII text) it raises
``NotPlain``, and the caller reads the file with PyYAML. tests/sdk/test_kubeconfig_yaml.py holds
``load`` against ``yaml.safe_load`` on generated documents in the styles of those writers.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from .errors import NotPlain

__all__ = ["NotPlain", "load"]

# PyYAML's implicit resolvers for a plain scalar (yaml/resolver.py, YAML 1.1), pinned by the tests.
_NULL = {"~": None, "null": None, "Null": None, "NULL": None}
_BOOL = {word: value for value, words in ((True, "yes Yes YES true True TRUE on On ON"),
                                          (False, "no No NO false False FALSE off Off OFF"))
         for word in words.split()}
_NUMBER_START = set("-+.0123456789")  # where PyYAML's int, float and timestamp resolvers look
# Every character those three resolvers' expressions can match: a scalar with any other character is a
# string (a token such as "0o98zq...", base64 starting with a digit), without copying the expressions.
_NUMBER_ALPHABET = set("0123456789-+_.: \t" "abcdefABCDEF" "x" "inNaAIfF" "tTZ")
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
# A plain scalar starting with one of these is something else in YAML (or not plain in every position).
_INDICATORS = set("?:,[]{}#&*!|>'\"%@`")
_KEY = re.compile(r"([^ ]+?):(?: +(.*))?")


class _Line(NamedTuple):
    indent: int
    text: str


def load(text: str) -> Any:
    """The document, as ``yaml.safe_load(text)`` returns it.

    Raises:
        NotPlain: the text is outside the plain style (see the module docstring).
    """
    text = text.replace("\r\n", "\n")  # any other control character, a lone \r included, is refused below
    if not text.isascii() or not text.replace("\n", "").isprintable() or " #" in text:
        raise NotPlain("non-ASCII text, tabs or other control characters, or comments after content")
    lines = []
    for raw in text.split("\n"):
        content = raw.strip(" ")
        if content and not content.startswith("#"):
            lines.append(_Line(len(raw) - len(raw.lstrip(" ")), content))
    if not lines:
        return None
    if lines[0].indent:
        raise NotPlain("an indented document")
    value, end = _node(lines, 0)
    # A line no collection took (deeper than its neighbour: a continued scalar, or an indentation error)
    # stops every enclosing collection, since its indentation is none of theirs; so it is caught here.
    if end != len(lines):
        raise NotPlain(f"line {end + 1}: unexpected indentation")
    return value


def _is_item(line: _Line) -> bool:
    return line.text == "-" or line.text.startswith("- ")


def _node(lines: list[_Line], start: int) -> tuple[Any, int]:
    """The block collection starting at ``lines[start]``, and the index of the line after it."""
    if _is_item(lines[start]):
        return _sequence(lines, start)
    if _KEY.fullmatch(lines[start].text):
        return _mapping(lines, start)
    raise NotPlain(f"line {start + 1}: a scalar where a collection was expected")


def _nested(lines: list[_Line], index: int, indent: int, *, sequence_allowed: bool) -> tuple[Any, int]:
    """The value of ``key:`` or ``-`` written on the lines below ``lines[index]``, or null."""
    below = index + 1
    if below < len(lines) and (lines[below].indent > indent or
                               (sequence_allowed and lines[below].indent == indent and _is_item(lines[below]))):
        return _node(lines, below)
    return None, below


def _mapping(lines: list[_Line], start: int) -> tuple[dict[Any, Any], int]:
    indent, result, index = lines[start].indent, {}, start
    while index < len(lines) and lines[index].indent == indent and not _is_item(lines[index]):
        match = _KEY.fullmatch(lines[index].text)
        if match is None:
            raise NotPlain(f"line {index + 1}: not a 'key: value' line")
        key = _scalar(match[1])
        if not isinstance(key, str):
            raise NotPlain(f"line {index + 1}: a key that is not a string")
        if match[2]:  # a repeated key replaces the earlier value, as in PyYAML
            result[key], index = _scalar(match[2]), index + 1
        else:  # a sequence may sit at the key's own indentation: "key:\n- item"
            result[key], index = _nested(lines, index, indent, sequence_allowed=True)
    return result, index


def _sequence(lines: list[_Line], start: int) -> tuple[list[Any], int]:
    indent, result, index = lines[start].indent, [], start
    while index < len(lines) and lines[index].indent == indent and _is_item(lines[index]):
        content = lines[index].text[1:].lstrip(" ")
        if not content:
            value, index = _nested(lines, index, indent, sequence_allowed=False)
        elif _KEY.fullmatch(content):  # "- key: value" opens a mapping at the column of "key"
            lines[index] = _Line(indent + len(lines[index].text) - len(content), content)
            value, index = _mapping(lines, index)
        else:
            value, index = _scalar(content), index + 1
        result.append(value)
    return result, index


def _scalar(text: str) -> Any:
    """A one-line scalar as PyYAML's safe loader reads it."""
    if text in ("{}", "[]"):
        return {} if text == "{}" else []
    if len(text) >= 2 and text[0] == text[-1] == "'":
        inner = text[1:-1]
        if "'" in inner.replace("''", ""):
            raise NotPlain("a single-quoted scalar that ends early")
        return inner.replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        inner = text[1:-1]
        if "\\" in inner or '"' in inner:
            raise NotPlain("a double-quoted scalar with escapes")
        return inner
    if text[0] in _INDICATORS or (text[0] == "-" and text[1:2] in ("", " ")) or ": " in text or text.endswith(":"):
        raise NotPlain(f"not a plain scalar: {text[:20]!r}")
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if text in ("<<", "="):
        raise NotPlain("a merge key or value indicator")
    if text[0] in _NUMBER_START and set(text) <= _NUMBER_ALPHABET:
        if _PLAIN_INT.fullmatch(text):
            return int(text)
        raise NotPlain(f"a scalar PyYAML may read as a number or a date: {text[:20]!r}")
    return text

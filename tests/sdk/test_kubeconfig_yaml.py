"""``devservers_sdk.kubeconfig_yaml`` against PyYAML: the same document, or ``NotPlain``, never another answer.

Documents are generated (kubeconfig field names, random keys, awkward strings, numbers, booleans, nulls,
nesting) and written the way kubeconfig writers write them: PyYAML's ``safe_dump`` in its styles and widths,
and client-go's style with sequences indented under their key. Whatever ``load`` reads must equal
``yaml.safe_load``, types included; the kubeconfigs real writers produce must be read without PyYAML.
"""

from __future__ import annotations

import base64
import contextlib
import os
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devservers_sdk.errors import NotPlain
from devservers_sdk.kubeconfig_yaml import load
from devservers_sdk.localcluster.cluster import kubeconfig_document


def typed(value: Any) -> Any:
    """A comparable form that tells ``True`` from ``1`` and ``"1"`` from ``1``."""
    if isinstance(value, dict):
        return ("map", sorted((typed(k), typed(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("seq", [typed(item) for item in value])
    return (type(value).__name__, repr(value))


def same_or_not_plain(text: str) -> bool:
    """True when ``load`` read ``text`` (and read it as PyYAML does); False when it declined."""
    try:
        ours = load(text)
    except NotPlain:
        return False
    assert typed(ours) == typed(yaml.safe_load(text)), text
    return True


class GoStyleDumper(yaml.SafeDumper):
    """Sequences indented under their key, as client-go (yaml.v3) writes them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dumps(document: Any) -> list[str]:
    return [
        yaml.safe_dump(document, default_flow_style=False, sort_keys=False),
        yaml.safe_dump(document, default_flow_style=False, sort_keys=True, indent=4),
        yaml.safe_dump(document, default_flow_style=False, width=24),  # folds long strings onto more lines
        yaml.safe_dump(document, default_flow_style=None),  # flow style for leaf collections
        yaml.safe_dump(document, default_style='"'),
        yaml.safe_dump(document, default_style="'"),
        yaml.dump(document, Dumper=GoStyleDumper, default_flow_style=False, sort_keys=False),
    ]


FIELD_NAMES = ["apiVersion", "kind", "clusters", "contexts", "users", "name", "cluster", "context", "user",
               "server", "certificate-authority-data", "token", "tokenFile", "namespace", "current-context",
               "preferences", "exec", "args", "env", "insecure-skip-tls-verify", "tls-server-name"]
AWKWARD = ["yes", "No", "on", "OFF", "true", "null", "~", "", " ", "0", "-1", "+5", "007", "0x1F", "1_000",
           "1e3", "1.5", ".inf", "-.Inf", ".NaN", "12:30", "2001-12-14", "2001-12-14T21:59:43.10-05:00", "<<", "=",
           "-", "- a", "a: b", "a:b", "#x", "a #b", "a#b", "'q'", '"q"', "it's", "@x", "%x", "`x", "!x", "&x", "*x",
           "|", ">", "?", ":", "[a]", "{a: 1}", "{}", "[]", "a, b", "tab\there", "new\nline", "back\\slash",
           "https://127.0.0.1:6443", "https://[::1]:6443/k8s/clusters/c-1", "0o981zq8d1Xbkxq3", "3fA8", "-abc",
           "ünïcode", "x" * 120, "several words that a narrow dump folds onto the next line"]
scalars = st.one_of(
    st.sampled_from(AWKWARD),
    st.text(alphabet=st.sampled_from(list("0123456789-+_.:eExabfnNtTZ oqz/'\"#")), min_size=1, max_size=10),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    st.integers(-10**6, 10**6), st.booleans(), st.none(), st.floats(), st.dates(),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.sampled_from(AWKWARD),
                 st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12))
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, documents, max_size=6))
def test_generated_documents_read_as_pyyaml_reads_them(document: dict[str, Any]) -> None:
    for text in dumps(document):
        same_or_not_plain(text)


@settings(max_examples=300, deadline=None)
@given(scalars)
def test_scalars_resolve_as_pyyaml_resolves_them(value: Any) -> None:
    for text in dumps({"key": value}) + dumps([value]):
        same_or_not_plain(text)


@pytest.mark.parametrize("word", ["yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False",
                                  "FALSE", "on", "On", "ON", "off", "Off", "OFF", "~", "null", "Null", "NULL",
                                  "y", "n", "nULL", "tRUE", "0", "12", "-3", "+4", "0o981zq", "1e3", "1.5e+3",
                                  "-.5", ".inf", ".NaN", "12:30", "0x1F", "0b101", "1_000", "007", "010", "2001-12-14",
                                  "2001-12-14 21:59:43.10 -5", "<<", "=", "3fA8", "-abc", "_x"])
def test_plain_words(word: str) -> None:
    same_or_not_plain(f"key: {word}\n")


HANDWRITTEN = [
    "a: 1\n# a comment\nb: 2\n",
    "a: 1 # trailing comment\n",
    "a: &anchor x\nb: *anchor\n",
    "a: !!str 1\n",
    "a: |\n  block\n",
    "a: >\n  folded\n",
    "a: plain\n  continued\n",
    'a: "double\n  quoted"\n',
    'a: "esc\\"aped"\n',
    "a: 'it''s'\n",
    "a: 'it's'\n",
    "---\na: 1\n",
    "a: 1\n...\n",
    "a:\n\tb: 1\n",
    "a: 1\na: 2\n",
    "? a\n: 1\n",
    "a:b\n",
    "a: {b: 1}\n",
    "a: [1, 2]\n",
    "a:\n- 1\n- 2\nb: x\n",
    "a:\n  - 1\n  - - 2\n",
    "a:\n  b: 1\n c: 2\n",
    "a:\n    b: 1\n  c: 2\n",
    "- a\n- b\n",
    "  a: 1\n",
    "a: 1\r\nb: 2\r\n",
    "a:\n-\n  b: 1\n- \n",
    "a: - b\n",
    "key: value: other\n",
    "key: value:\n",
    "",
    "# only a comment\n",
    "\ufeffa: 1\n",
    "a: \x07\n",
    "a: 1\x0c\n",
    "a: x\x0by\n",
    "a: 1\rb: 2\n",
    "a: 1\x1cb: 2\n",
]


@pytest.mark.parametrize("text", HANDWRITTEN)
def test_handwritten_yaml(text: str) -> None:
    """Read as PyYAML reads it, or declined; never read where PyYAML fails."""
    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError:
        with pytest.raises(NotPlain):
            load(text)
        return
    with contextlib.suppress(NotPlain):
        assert typed(load(text)) == typed(expected)


READ = [
    "-   a: 1\n    b: 2\n",
    "-\n- b\n",
    "a:\n-\n  b: 1\n-\n",
    "k:\n  - x\n  - y: 1\n    z: 2\nw: 3\n",
    "a: 'it''s'\nb: 'x: y'\n",
    'a: "x: y"\n',
    "a: -5\nb: -xyz\nc: _x\nd: 0o98zq\ne: ~\nf:\ng: {}\nh: []\n",
    "a: 1\r\nb: two\r\n",
    "a:b: c\n",
    "# kubeconfig\napiVersion: v1\n\n# clusters\nclusters: []\n",
]


@pytest.mark.parametrize("text", READ)
def test_plain_documents_are_read(text: str) -> None:
    assert same_or_not_plain(text), f"declined: {text!r}"


# -- what real writers produce is read without PyYAML ------------------------------------------------------

KUBECTL_STYLE = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=
    server: https://127.0.0.1:6443
  name: kind-kind
- cluster:
    insecure-skip-tls-verify: true
    server: https://10.0.0.1
  name: lab
contexts:
- context:
    cluster: kind-kind
    namespace: ml
    user: kind-kind
  name: kind-kind
current-context: kind-kind
kind: Config
preferences: {}
users:
- name: kind-kind
  user:
    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQ==
- name: eks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      env: null
      interactiveMode: IfAvailable
      provideClusterInfo: false
"""


def test_real_writers_are_read_without_pyyaml() -> None:
    assert same_or_not_plain(KUBECTL_STYLE)
    assert same_or_not_plain(yaml.dump(yaml.safe_load(KUBECTL_STYLE), Dumper=GoStyleDumper, sort_keys=False))
    for _ in range(50):  # devctl local up's kubeconfig, with random tokens (some start with a digit or "-")
        token = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        document = kubeconfig_document("https://127.0.0.1:40123", token, ca_pem=b"-----BEGIN CERTIFICATE-----\n")
        text = yaml.safe_dump(document, sort_keys=False)
        assert same_or_not_plain(text), text

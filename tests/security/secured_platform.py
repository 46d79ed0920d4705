"""The product as a platform team deploys it, on a local cluster of its own: the security tests' world.

What ``operator/deploy`` ships is applied as it is (the CRDs, the sample flavors, the operator's namespace
and ServiceAccount, and the owner policy), the operator runs as ``python -m devservers_operator`` with a
token of *its ServiceAccount* (so the policy sees the identity it sees in a real cluster), and people have
tokens of their own: ``alice`` and ``bob`` (plain users), ``carol`` (in ``devservers:admins``), and
``alice@example.com`` and ``alice@evil.example`` (e-mail user names, as EKS and OIDC give).

A cluster of its own rather than the session's: the policy binds cluster-wide, exactly as deployed, and
would refuse the DevServers that other tests create for made-up owners with the admin token. Plain
Python (no pytest), so that ``bench/fuzz.py`` runs the same platform.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devservers_sdk.localcluster import LocalCluster

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "operator" / "deploy"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
OPERATOR_USER = "system:serviceaccount:devservers-system:devservers-operator"
ADMIN_GROUP = "devservers:admins"
# The files of operator/deploy a local cluster can run: everything but the operator's Deployment (the
# operator runs here as a process) and the user RBAC (the emulator does not enforce RBAC).
DEPLOY_FILES = ("crds.yaml", "namespace.yaml", "operator-rbac.yaml", "owner-policy.yaml", "flavors.yaml")


def _die_with_parent() -> None:
    """In the operator's child process: get SIGTERM if the test process dies, so no operator outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _add_client_certificate(path: Path, user: str) -> str:
    """Add a fresh client certificate and key to the kubeconfig at ``path``; returns the key's PEM."""
    import base64
    import datetime

    import yaml
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from devservers_sdk.localcluster import write_kubeconfig

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    document = yaml.safe_load(path.read_text())
    entry = document["users"][0]["user"]
    entry["client-certificate-data"] = base64.b64encode(certificate.public_bytes(serialization.Encoding.PEM)).decode()
    entry["client-key-data"] = base64.b64encode(key_pem).decode()
    write_kubeconfig(path, document)
    return key_pem.decode()


def kubectl(kubeconfig: str, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True,
                          input=input, check=check, timeout=timeout)


@dataclass
class SecuredPlatform:
    """A local cluster with ``operator/deploy`` applied and the operator running as its ServiceAccount.

    Args:
        workdir: where kubeconfigs and the operator's log go.
        node_capacity: the node's capacity (the sample flavors need a few CPUs).
        operator_env: extra ``DEVSERVERS_*`` settings for the operator.
        with_policy: apply ``owner-policy.yaml``.
        client_keys: also put a client certificate and private key into every kubeconfig (``key_material``
            holds the PEM of each): key material a leak test can look for. The emulator authenticates the
            bearer token and never asks for the certificate.
    """

    workdir: Path
    node_capacity: dict[str, str] = field(default_factory=lambda: {"cpu": "64", "memory": "256Gi", "pods": "200"})
    operator_env: dict[str, str] = field(default_factory=dict)
    with_policy: bool = True
    client_keys: bool = False
    cluster: LocalCluster | None = None
    operator: subprocess.Popen[bytes] | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    kubeconfigs: dict[str, str] = field(default_factory=dict)
    key_material: dict[str, str] = field(default_factory=dict)

    @property
    def admin_kubeconfig(self) -> str:
        assert self.cluster is not None
        return self.cluster.kubeconfig

    @property
    def operator_log(self) -> Path:
        return self.workdir / "operator.log"

    def start(self) -> SecuredPlatform:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster = LocalCluster(node_capacity=self.node_capacity).start()
        admin = self.cluster.kubeconfig
        for name in DEPLOY_FILES:
            if name == "owner-policy.yaml" and not self.with_policy:
                continue
            if name == "flavors.yaml":
                self._wait_for_crds()
            kubectl(admin, "apply", "-f", str(DEPLOY / name))
        token = self._service_account_token("devservers-system", "devservers-operator")
        self.tokens["operator"] = token
        self.kubeconfigs["operator"] = self.cluster.kubeconfig_for(self.workdir / "operator.kubeconfig", token=token)
        for user, groups in (("alice", []), ("bob", []), ("carol", [ADMIN_GROUP]), ("alice@example.com", []),
                             ("alice@evil.example", [])):
            self.tokens[user] = self.cluster.add_user(user, groups)
            self.kubeconfigs[user] = self.cluster.kubeconfig_for(self.workdir / f"{user.replace('@', '-at-')}.kubeconfig",
                                                                token=self.tokens[user])
        if self.client_keys:
            for user, path in self.kubeconfigs.items():
                self.key_material[user] = _add_client_certificate(Path(path), user)
        self.start_operator()
        return self

    def _service_account_token(self, namespace: str, name: str) -> str:
        # A TokenRequest, as `kubectl create token` sends it (which speaks protobuf, and the emulator JSON).
        from kubernetes import client

        api = self.api()
        try:
            request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                       "spec": {"audiences": [], "expirationSeconds": 86400}}
            answer = client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request)
            return str(answer.status.token)
        finally:
            api.close()

    def _wait_for_crds(self) -> None:
        deadline = time.monotonic() + 30
        while kubectl(self.admin_kubeconfig, "get", "devserverflavors", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the DevServer CRDs were not served within 30s")
            time.sleep(0.1)

    def start_operator(self) -> None:
        env = {**os.environ, "KUBECONFIG": self.kubeconfigs["operator"],
               "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO)]),
               "DEVSERVERS_LIVENESS": "", "DEVSERVERS_TERMINATION_GRACE_SECONDS": "2", **self.operator_env}
        env.pop("DEVSERVERS_NAMESPACES", None)
        with self.operator_log.open("ab") as log:
            self.operator = subprocess.Popen([sys.executable, "-m", "devservers_operator"], cwd=REPO, env=env,
                                             stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 60
        while "devservers operator watching" not in self.log():
            if self.operator.poll() is not None:
                raise RuntimeError(f"the operator exited with {self.operator.returncode}:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the operator did not start within 60s:\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def operator_alive(self) -> bool:
        return self.operator is not None and self.operator.poll() is None

    def log(self) -> str:
        return self.operator_log.read_text(errors="replace") if self.operator_log.exists() else ""

    def request_counts(self) -> dict[str, int]:
        """Requests the API server answered, by verb and resource (read in-process: not itself a request)."""
        assert self.cluster is not None
        return self.cluster.request_counts()

    def api(self, user: str = "admin") -> Any:
        """``kubernetes.client.ApiClient`` for one identity (``admin``, ``alice``, ``bob``, ``carol``, ``operator``)."""
        from kubernetes import config

        kubeconfig = self.admin_kubeconfig if user == "admin" else self.kubeconfigs[user]
        return config.new_client_from_config(kubeconfig)

    def stop(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            self.operator.send_signal(signal.SIGINT)
            try:
                self.operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.operator.kill()
                self.operator.wait()
        if self.cluster is not None:
            self.cluster.stop()

    def __enter__(self) -> SecuredPlatform:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

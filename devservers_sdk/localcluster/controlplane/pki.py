"""The certificates and keys of a real local control plane, kept in its state directory.

Like kubeadm's ``/etc/kubernetes/pki``, but for one machine's loopback: a cluster CA that signs the API server's
serving certificate, every client certificate (the API server authenticates X.509 clients by CN = user name and
O = groups) and the kubelet serving certificates (so the API server can verify the node agent with
``--kubelet-certificate-authority``); a separate front-proxy CA for the aggregation layer's request-header
authentication (a client certificate of the cluster CA must never be able to assert headers); and the
service-account signing key pair.

Everything is created once and reused, so a control plane restarted on the same state directory keeps its
identity: kubeconfigs written earlier stay valid. Keys are ECDSA P-256 (milliseconds to generate; accepted by
every component, including the service-account token signer, which then uses ES256) and written 0600.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
API_SERVER_DNS_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                        "kubernetes.default.svc.cluster.local")
FRONT_PROXY_CLIENT = "front-proxy-client"
APISERVER_KUBELET_CLIENT = "kube-apiserver-kubelet-client"


@dataclass(frozen=True)
class CertificateFiles:
    """A PEM certificate and its PEM private key, on disk."""

    cert: Path
    key: Path

    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as sink:
        sink.write(data)
    os.replace(temporary, path)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _subject(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, key_cert_sign=cert_sign,
                         crl_sign=cert_sign, content_commitment=False, data_encipherment=False, key_encipherment=False,
                         key_agreement=False, encipher_only=False, decipher_only=False)


def _alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _file_stem(user: str, groups: Sequence[str]) -> str:
    """A readable, collision-free file name for an identity (user names may hold ':' and '/')."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", user)[:60]
    digest = hashlib.sha256("\0".join([user, *sorted(groups)]).encode()).hexdigest()[:10]
    return f"{readable}-{digest}"


class CertificateAuthority:
    """A CA whose certificate and key live at ``<directory>/<name>.crt`` / ``.key`` (created if missing)."""

    def __init__(self, directory: Path, name: str, common_name: str) -> None:
        self.files = CertificateFiles(directory / f"{name}.crt", directory / f"{name}.key")
        if not (self.files.cert.exists() and self.files.key.exists()):
            self._create(common_name)
        self._cert = x509.load_pem_x509_certificate(self.files.cert_pem())
        loaded = serialization.load_pem_private_key(self.files.key_pem(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        self._key = loaded

    def _create(self, common_name: str) -> None:
        key = _new_key()
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_subject(common_name))
            .issuer_name(_subject(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private(self.files.key, _key_pem(key))
        _write_public(self.files.cert, cert.public_bytes(serialization.Encoding.PEM))

    def cert_pem(self) -> bytes:
        return self.files.cert_pem()

    def issue(self, files: CertificateFiles, *, common_name: str, organizations: Sequence[str] = (),
              server_hosts: Sequence[str] = (), client: bool = False) -> CertificateFiles:
        """Sign a new leaf certificate for a new key and write both."""
        key = _new_key()
        now = datetime.datetime.now(datetime.UTC)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server_hosts else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(_subject(common_name, organizations))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                           critical=False)
        )
        if server_hosts:
            builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(server_hosts)), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        write_private(files.key, _key_pem(key))
        _write_public(files.cert, cert.public_bytes(serialization.Encoding.PEM))
        return files


class ClusterPKI:
    """All the credentials of one control plane, under ``directory`` (created on first use, then reused).

    Args:
        directory: where the files live (``<state>/pki``).
        first_service_ip: the ClusterIP of the ``kubernetes`` Service, which in-cluster clients dial.
    """

    def __init__(self, directory: Path, *, first_service_ip: str = "10.96.0.1") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        self.ca = CertificateAuthority(directory, "ca", "devservers-localcluster-ca")
        self.front_proxy_ca = CertificateAuthority(directory, "front-proxy-ca", "devservers-front-proxy-ca")
        # etcd trusts its own CA only: with the cluster CA, any user's client certificate would open etcd.
        self.etcd_ca = CertificateAuthority(directory, "etcd-ca", "devservers-etcd-ca")
        self.etcd_server = self._ensure(
            CertificateFiles(directory / "etcd-server.crt", directory / "etcd-server.key"),
            lambda files: self.etcd_ca.issue(files, common_name="etcd", server_hosts=("127.0.0.1", "localhost"),
                                             client=True))
        self.apiserver_etcd_client = self._ensure(
            CertificateFiles(directory / "apiserver-etcd-client.crt", directory / "apiserver-etcd-client.key"),
            lambda files: self.etcd_ca.issue(files, common_name="kube-apiserver-etcd-client", client=True))
        self.apiserver = self._ensure(
            CertificateFiles(directory / "apiserver.crt", directory / "apiserver.key"),
            lambda files: self.ca.issue(files, common_name="kube-apiserver",
                                        server_hosts=("127.0.0.1", *API_SERVER_DNS_NAMES, first_service_ip)))
        self.front_proxy_client = self._ensure(
            CertificateFiles(directory / "front-proxy-client.crt", directory / "front-proxy-client.key"),
            lambda files: self.front_proxy_ca.issue(files, common_name=FRONT_PROXY_CLIENT, client=True))
        # kubeadm names it so and, since 1.29, gives it no group: RBAC grants it the kubelet API only
        # (ClusterRole system:kubelet-api-admin), which the control plane binds at bootstrap.
        self.apiserver_kubelet_client = self.client_certificate(APISERVER_KUBELET_CLIENT)
        self.service_account_key, self.service_account_public_key = self._ensure_service_account_keys()

    def _ensure(self, files: CertificateFiles, create: Callable[[CertificateFiles], CertificateFiles]
                ) -> CertificateFiles:
        if files.cert.exists() and files.key.exists():
            return files
        return create(files)

    def _ensure_service_account_keys(self) -> tuple[Path, Path]:
        private, public = self.directory / "sa.key", self.directory / "sa.pub"
        if not (private.exists() and public.exists()):
            key = _new_key()
            write_private(private, _key_pem(key))
            _write_public(public, key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        return private, public

    def serving_certificate(self, name: str, hosts: Sequence[str] = ("127.0.0.1", "localhost")
                            ) -> CertificateFiles:
        """A serving certificate of the cluster CA (the controller manager's and scheduler's health ports)."""
        files = CertificateFiles(self.directory / f"{name}-serving.crt", self.directory / f"{name}-serving.key")
        return self._ensure(files, lambda files: self.ca.issue(files, common_name=name, server_hosts=hosts))

    def client_certificate(self, user: str, groups: Sequence[str] = ()) -> CertificateFiles:
        """A client certificate of the cluster CA that authenticates as ``user`` in ``groups`` (reused if made)."""
        stem = _file_stem(user, groups)
        files = CertificateFiles(self.directory / "clients" / f"{stem}.crt",
                                 self.directory / "clients" / f"{stem}.key")
        return self._ensure(files, lambda files: self.ca.issue(files, common_name=user,
                                                               organizations=tuple(groups), client=True))

    def node_client_certificate(self, node_name: str) -> CertificateFiles:
        """The identity the Node authorizer and NodeRestriction admission recognise as ``node_name``."""
        return self.client_certificate(f"system:node:{node_name}", ("system:nodes",))

    def kubelet_serving_certificate(self, node_name: str, addresses: Sequence[str] = ("127.0.0.1",)
                                    ) -> CertificateFiles:
        """A serving certificate for a node's kubelet API, which the API server verifies against the cluster CA."""
        stem = _file_stem(f"kubelet-serving:{node_name}", tuple(addresses))
        files = CertificateFiles(self.directory / "kubelets" / f"{stem}.crt",
                                 self.directory / "kubelets" / f"{stem}.key")
        return self._ensure(files, lambda files: self.ca.issue(
            files, common_name=f"system:node:{node_name}", organizations=("system:nodes",),
            server_hosts=(*addresses, node_name)))

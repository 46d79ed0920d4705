"""A throwaway certificate authority for each local cluster, and the certificates it issues.

TLS is not decoration here: client-go (and therefore kubectl) refuses to send a bearer token to a plain
``http://`` server, and the SDK's TLS error handling deserves a real handshake to be tested against. Keys
are ECDSA P-256 so generating them costs milliseconds, and they never leave the state directory.

Besides the API server's serving certificate, the CA issues what a real cluster has between the API server
and its kubelets: the kubelet API's serving certificate (which the API server verifies, as
``--kubelet-certificate-authority`` does) and the API server's kubelet client certificate
(``--kubelet-client-certificate``, CN ``kube-apiserver-kubelet-client`` as kubeadm names it), which the
kubelet API requires, so that nothing but the API server can exec into a pod.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost", "::1")
APISERVER_KUBELET_CLIENT = "kube-apiserver-kubelet-client"


@dataclass(frozen=True)
class ServingCertificate:
    """A certificate of the cluster CA (the API server's, unless :meth:`issue` made it) and its key.

    ``ca_key_pem`` is only set on what :func:`generate` returns: the one object that may issue more.
    """

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    ca_key_pem: bytes = b""

    def _write(self, directory: Path, name: str) -> tuple[Path, Path]:
        # ssl loads certificates only from paths; the key is written 0600.
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        cert_path.write_bytes(self.cert_pem + self.ca_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(self.key_pem)
        return cert_path, key_path

    def server_context(self, directory: Path, *, name: str = "apiserver",
                       verify_clients: bool = False) -> ssl.SSLContext:
        """An SSL context serving this certificate; ``verify_clients`` requires a client certificate of the CA."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*self._write(directory, name))
        if verify_clients:
            context.load_verify_locations(cadata=self.ca_pem.decode())
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def client_context(self, directory: Path, *, name: str) -> ssl.SSLContext:
        """An SSL context that presents this certificate and verifies servers against the cluster CA."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=self.ca_pem.decode())
        context.load_cert_chain(*self._write(directory, name))
        return context

    def issue(self, common_name: str, *, hosts: tuple[str, ...] = (), client: bool = False,
              organizations: tuple[str, ...] = ()) -> ServingCertificate:
        """Another certificate of this CA: for serving ``hosts``, or (``client``) for a TLS client."""
        if not self.ca_key_pem:
            raise ValueError("only the certificate generate() returned holds the CA key; issue from that one")
        ca_key = serialization.load_pem_private_key(self.ca_key_pem, password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_cert = x509.load_pem_x509_certificate(self.ca_pem)
        cert_pem, key_pem = _leaf(ca_cert.subject, ca_key, common_name, hosts=hosts, client=client,
                                  organizations=organizations)
        return replace(self, cert_pem=cert_pem, key_pem=key_pem, ca_key_pem=b"")


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _leaf(ca_name: x509.Name, ca_key: ec.EllipticCurvePrivateKey, common_name: str, *, hosts: tuple[str, ...],
          client: bool = False, organizations: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                              else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def generate(hosts: tuple[str, ...] = DEFAULT_HOSTS) -> ServingCertificate:
    """A new CA and the API server's serving certificate for ``hosts``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("localcluster-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert_pem, key_pem = _leaf(ca_name, ca_key, "localcluster-apiserver", hosts=hosts)
    return ServingCertificate(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert_pem,
        key_pem=key_pem,
        ca_key_pem=ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
    )

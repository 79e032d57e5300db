"""Certificates made at test time with the `cryptography` package: a CA, a server
certificate for 127.0.0.1 / localhost and a client certificate (mTLS), both signed by
that CA, plus a client certificate from another CA (refused under mTLS). EC P-256 keys,
valid for two days, PEM files in the given directory."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAMES = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
VALID = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # signed by another CA
    stranger_key: Path


@dataclass(frozen=True)
class _Issuer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def make_certificates(directory: Path) -> Certificates:
    ca, ca_path = _authority(directory, "ca")
    other, _ = _authority(directory, "other-ca")
    server = _leaf(directory, "server", ca, ExtendedKeyUsageOID.SERVER_AUTH, SERVER_NAMES)
    client = _leaf(directory, "client", ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger = _leaf(directory, "stranger", other, ExtendedKeyUsageOID.CLIENT_AUTH)
    return Certificates(ca_path, *server, *client, *stranger)


def _authority(directory: Path, name: str) -> tuple[_Issuer, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(f"protoserve test {name}")
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    _write(directory, name, cert, key)
    return _Issuer(cert, key), directory / f"{name}.pem"


def _leaf(
    directory: Path, name: str, issuer: _Issuer, usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName] | None = None,
) -> tuple[Path, Path]:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(_name(name), issuer.cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    _write(directory, name, builder.sign(issuer.key, hashes.SHA256()), key)
    return directory / f"{name}.pem", directory / f"{name}-key.pem"


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID)
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, name: str, cert: x509.Certificate, key) -> None:
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

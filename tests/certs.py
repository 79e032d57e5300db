"""Certificates made at test time: a CA, a server certificate for 127.0.0.1 / localhost
and a client certificate (mTLS), all signed by that CA, plus a client certificate from
another CA (refused under mTLS). Made with the `openssl` command line (the `cryptography`
package is not among the dependencies); without it the TLS tests skip (fail in CI)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.envoy.envoy_stack import require_tool

SERVER_NAMES = "subjectAltName=DNS:localhost,IP:127.0.0.1"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # signed by another CA
    stranger_key: Path


def make_certificates(directory: Path) -> Certificates:
    openssl = require_tool("openssl")
    ca_cert, ca_key = _authority(openssl, directory, "ca")
    other_cert, other_key = _authority(openssl, directory, "other-ca")
    server = _leaf(openssl, directory, "server", (ca_cert, ca_key), SERVER_NAMES, "serverAuth")
    client = _leaf(openssl, directory, "client", (ca_cert, ca_key), None, "clientAuth")
    stranger = _leaf(openssl, directory, "stranger", (other_cert, other_key), None, "clientAuth")
    return Certificates(ca_cert, *server, *client, *stranger)


def _run(openssl: str, *args: str) -> None:
    subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)


def _authority(openssl: str, directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    _run(
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj",
        f"/CN=protoserve test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def _leaf(
    openssl: str,
    directory: Path,
    name: str,
    issuer: tuple[Path, Path],
    names: str | None,
    usage: str,
) -> tuple[Path, Path]:
    cert, key, csr = (directory / f"{name}{s}.pem" for s in ("", "-key", "-csr"))
    extensions = directory / f"{name}.ext"
    lines = ["basicConstraints=CA:FALSE", f"extendedKeyUsage={usage}"]
    extensions.write_text("\n".join([*lines, *([names] if names else [])]) + "\n")
    _run(
        openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
    )  # fmt: skip
    _run(
        openssl, "x509", "-req", "-in", str(csr), "-CA", str(issuer[0]), "-CAkey",
        str(issuer[1]), "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile",
        str(extensions),
    )  # fmt: skip
    return cert, key

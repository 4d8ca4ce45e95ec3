"""A short-lived certificate that a browser accepts by its hash.

Chapter 5, "WebTransport: QUIC datagrams". WebTransport runs over
HTTP/3, so over TLS, and a development server has no certificate a CA
signed. A browser lets a page name the certificate it expects instead,
with `serverCertificateHashes`: the SHA-256 of the certificate's DER
bytes, accepted without any CA provided the certificate is ECDSA
(P-256; RSA is refused) and valid for less than two weeks.
`make_certificate` makes one such certificate (valid for 10 days) for
a run of the server; its hash is what a client pins.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# The W3C WebTransport API refuses a pinned certificate valid this long.
MAX_VALIDITY = timedelta(days=14)
VALIDITY = timedelta(days=10)
CLOCK_SKEW = timedelta(hours=1)  # a client's clock a little behind


@dataclass(frozen=True)
class PinnedCertificate:
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def sha256(self) -> bytes:
        """What `serverCertificateHashes` names: the DER's SHA-256."""
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return hashlib.sha256(der).digest()

    @property
    def sha256_hex(self) -> str:
        return self.sha256.hex()

    @property
    def sha256_base64(self) -> str:
        return base64.b64encode(self.sha256).decode()

    def write(self, directory: Path) -> tuple[Path, Path]:
        """`cert.pem` and `key.pem` in `directory`, the key readable by
        its owner only."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / "cert.pem", directory / "key.pem"
        cert_path.write_bytes(
            self.certificate.public_bytes(serialization.Encoding.PEM))
        key_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT
                             | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as key_file:
            key_file.write(key_pem)
        return cert_path, key_path


def subject_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def make_certificate(hosts: Sequence[str], now: datetime,
                     valid_for: timedelta = VALIDITY) -> PinnedCertificate:
    """A self-signed ECDSA P-256 certificate for `hosts`, valid from a
    little before `now` for `valid_for` in all."""
    if valid_for >= MAX_VALIDITY:
        raise ValueError(f"a pinned certificate must be valid for less"
                         f" than {MAX_VALIDITY.days} days, not {valid_for}")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    start = now - CLOCK_SKEW
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + valid_for)
        .add_extension(x509.SubjectAlternativeName(subject_names(hosts)),
                       critical=False)
        .sign(key, hashes.SHA256()))
    return PinnedCertificate(certificate, key)

"""A certificate authority for one machine, and the certificates it signs.

Chapter 9, "Securing audio data: ... in transit (TLS 1.3)". What
`python -m ch09_security certs` writes: a CA certificate that clients
trust, a server certificate for `localhost` and `127.0.0.1` (its
subject alternative names, which is what clients check; more with
`--name`), and a client certificate that a service shows the gRPC port
under mutual TLS. Built with `cryptography`'s X.509 builder, so the
files outlive the command; the tests make their throwaway CAs with
`trustme`, which is made for that. Keys are ECDSA P-256, written
readable by their owner only; the CA's own key is never written, so
no one can sign another certificate under it: a new set is one command
away.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_NAMES = ("localhost", "127.0.0.1")
CLIENT_NAME = "speech-client"
CLOCK_SKEW = timedelta(minutes=5)  # valid a little before it was made


@dataclass(frozen=True)
class Signed:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CertificateFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def general_name(name: str) -> x509.GeneralName:
    """An IP address entry for an address, a DNS entry otherwise."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def new_ca(now: datetime, days: int) -> Signed:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Speech API"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Speech API local CA")])
    identifier = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                       critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False,
            key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(identifier, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            key.public_key()), critical=False)
        .sign(key, hashes.SHA256()))
    return Signed(certificate, key)


def issue(ca: Signed, names: Sequence[str], usage: x509.ObjectIdentifier,
          now: datetime, days: int) -> Signed:
    """A leaf certificate for `names` (the first is its common name),
    good for one `usage`: serving, or showing as a client."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Speech API"),
        x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                       critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(
            [general_name(n) for n in names]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(
            key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256()))
    return Signed(certificate, key)


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` whole, created with `mode` from the start: a key
    is never readable by others, not even for a moment."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def write_certificate(path: Path, signed: Signed) -> None:
    write_file(path, signed.certificate.public_bytes(
        serialization.Encoding.PEM), 0o644)


def write_key(path: Path, signed: Signed) -> None:
    write_file(path, signed.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), 0o600)


def make_certificates(out: Path, names: Sequence[str] = DEFAULT_NAMES,
                      days: int = 90) -> CertificateFiles:
    """A new CA, a server and a client certificate, written to `out`."""
    now = datetime.now(UTC)
    ca = new_ca(now, days)
    server = issue(ca, names, ExtendedKeyUsageOID.SERVER_AUTH, now, days)
    client = issue(ca, [CLIENT_NAME], ExtendedKeyUsageOID.CLIENT_AUTH,
                   now, days)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = CertificateFiles(
        out / "ca.pem", out / "server.pem", out / "server-key.pem",
        out / "client.pem", out / "client-key.pem")
    write_certificate(files.ca, ca)
    write_certificate(files.server_cert, server)
    write_key(files.server_key, server)
    write_certificate(files.client_cert, client)
    write_key(files.client_key, client)
    return files

"""Signed checkpoints: the audit log's tree head, published and signed.

Chapter 10, "Audit logging: how to log it (immutable, append-only)". A
checkpoint says "the log had this many entries, and this was its Merkle
root", signed with Ed25519 in the C2SP signed-note format that Sigstore
Rekor and Go's checksum database publish theirs in: the origin line
names the log, then the size, then the base64 root, then a signature
line whose first four bytes identify the key. Whoever keeps a copy of
a checkpoint can later hold the log to it: every inclusion proof ends
at a signed root, and a log that rewrote history cannot produce a
consistency proof from the old checkpoint to its new one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)

from ch10_compliance.signer import Signer, verify

DEFAULT_ORIGIN = "speech-api.localhost/audit"
ED25519 = b"\x01"  # the signed-note algorithm byte
DASH = "\u2014"  # the em dash that opens a signature line


class CheckpointError(ValueError):
    """A checkpoint that is malformed, or whose signature fails."""


def key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + raw).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return (f"{self.origin}\n{self.size}\n"
                f"{base64.b64encode(self.root).decode()}\n")

    def signed(self, signer: Signer) -> str:
        """The signed note: the body, a blank line, one signature."""
        body = self.body()
        signature = signer.sign(body.encode())
        tag = key_hash(self.origin, signer.public_key) + signature
        return (f"{body}\n{DASH} {self.origin} "
                f"{base64.b64encode(tag).decode()}\n")


def parse_checkpoint(note: str, public_key: Ed25519PublicKey
                     ) -> Checkpoint:
    """The checkpoint a note holds, if `public_key` signed it."""
    body, separator, signatures = note.partition("\n\n")
    lines = body.split("\n")
    if not separator or len(lines) != 3:
        raise CheckpointError("not a signed checkpoint note")
    origin, size_text, root_text = lines
    try:
        size = int(size_text)
        root = base64.b64decode(root_text, validate=True)
    except (ValueError, binascii.Error):
        raise CheckpointError("a checkpoint's size or root is "
                              "malformed") from None
    expected = key_hash(origin, public_key)
    for line in signatures.strip("\n").split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH or parts[1] != origin:
            continue
        try:
            tag = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            continue
        if tag[:4] == expected and verify(public_key, (body + "\n")
                                          .encode(), tag[4:]):
            return Checkpoint(origin, size, root)
    raise CheckpointError(
        f"checkpoint of size {size} is not signed by this key: forged, "
        "altered, or signed with another key")

"""The Ed25519 key that signs audit checkpoints and erasure receipts.

Chapter 10, "Audit logging: how to log it (immutable, append-only)".
A signature is what lets a third party trust a checkpoint or a receipt
without trusting our database: whoever can write the tables still
cannot sign. So the private key lives outside the database: in
`AUDIT_SIGNING_KEY` (32 bytes, base64: from a secret manager) in
production, or generated once into `build/audit-signing.key`, readable
by its owner only, on a development machine. Verifiers need only the
public key, printed by `python -m ch10_compliance audit public-key`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)

from ch09_security.secret_file import generated_once

SIGNING_KEY_VARIABLE = "AUDIT_SIGNING_KEY"
DEFAULT_SIGNING_KEY_FILE = Path("build/audit-signing.key")
SEED_BYTES = 32


class SigningKeyError(ValueError):
    """The configured signing key is unusable."""


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise SigningKeyError(
            "a public key is 32 bytes of Ed25519, base64") from None


def verify(public_key: Ed25519PublicKey, message: bytes,
           signature: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Signer:
    private_key: Ed25519PrivateKey = field(repr=False)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_key_text(self) -> str:
        return public_key_text(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


def new_seed() -> str:
    return base64.b64encode(
        Ed25519PrivateKey.generate().private_bytes_raw()).decode()


def signer_from_seed(text: str, source: str) -> Signer:
    try:
        seed = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        seed = b""
    if len(seed) != SEED_BYTES:
        raise SigningKeyError(
            f"{source} must hold {SEED_BYTES} bytes, base64 (make one: "
            "python -m ch10_compliance audit new-signing-key)")
    return Signer(Ed25519PrivateKey.from_private_bytes(seed))


def load_signer(env: Mapping[str, str],
                path: Path = DEFAULT_SIGNING_KEY_FILE) -> Signer:
    configured = env.get(SIGNING_KEY_VARIABLE)
    if configured is not None:
        return signer_from_seed(configured, SIGNING_KEY_VARIABLE)
    return signer_from_seed(generated_once(path, new_seed), str(path))

"""The master key that every owner's key-encryption keys are wrapped under.

Chapter 9, "Securing audio data: encryption at rest". The top of the
key hierarchy never enters the database: production passes it in
`AUDIO_MASTER_KEY`, 32 random bytes in base64 (from a secret manager or
a KMS; `openssl rand -base64 32` makes one), and every replica and the
`audio` command must share it. A development machine gets one generated
once into `build/audio-master.key`, readable by its owner only. A value
that is not base64, or not 32 bytes, is refused with the reason.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from pathlib import Path

from ch09_security.secret_file import generated_once
from ch09_security.server_secret import SecretError

MASTER_KEY_VARIABLE = "AUDIO_MASTER_KEY"
DEFAULT_MASTER_KEY_FILE = Path("build/audio-master.key")
MASTER_KEY_BYTES = 32  # AES-256


class MasterKeyError(SecretError):
    """The configured master key is unusable."""


def decode_master_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise MasterKeyError(f"{source} is not base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise MasterKeyError(f"{source} must decode to {MASTER_KEY_BYTES}"
                             f" bytes, not {len(key)}")
    return key


def new_master_key() -> str:
    return base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode()


def load_master_key(env: Mapping[str, str],
                    path: Path = DEFAULT_MASTER_KEY_FILE) -> bytes:
    configured = env.get(MASTER_KEY_VARIABLE)
    if configured is not None:
        return decode_master_key(configured, MASTER_KEY_VARIABLE)
    return decode_master_key(generated_once(path, new_master_key),
                             str(path))

"""The server secret that keys are hashed under, and where it lives.

Chapter 9, "API key management: generation". The key table holds
HMAC-SHA256 digests under this secret, so every replica and the key
command must share it. Production passes it in `KEY_HASH_SECRET` (from
a secret manager: at least 32 bytes); a development machine gets one
generated once into a file readable by its owner only (`secret_file`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from ch09_security.secret_file import generated_once

SECRET_VARIABLE = "KEY_HASH_SECRET"
DEFAULT_SECRET_FILE = Path("build/key-hash.secret")
MIN_SECRET_BYTES = 32


class SecretError(ValueError):
    """The configured secret is unusable."""


def load_secret(env: Mapping[str, str],
                path: Path = DEFAULT_SECRET_FILE) -> bytes:
    configured = env.get(SECRET_VARIABLE)
    if configured is not None:
        secret = configured.encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise SecretError(f"{SECRET_VARIABLE} must hold at least "
                              f"{MIN_SECRET_BYTES} bytes")
        return secret
    secret = generated_once(path, lambda: secrets.token_hex(32)).encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretError(f"{path} holds no usable secret: delete it")
    return secret

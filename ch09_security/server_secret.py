"""The server secret that keys are hashed under, and where it lives.

Chapter 9, "API key management: generation". The key table holds
HMAC-SHA256 digests under this secret, so every replica and the key
command must share it. Production passes it in `KEY_HASH_SECRET` (from
a secret manager: at least 32 bytes); a development machine gets one
generated once into a file readable by its owner only.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

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
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # owner-only from the start; a racing process wins alone
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32))
    secret = path.read_text().strip().encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretError(f"{path} holds no usable secret: delete it")
    return secret

"""API keys, checked before the WebSocket upgrade.

Chapter 4, and chapter 9's "Authentication for streaming connections".
Every service of the repository reads its keys from `SPEECH_API_KEYS`
(comma-separated). A request without a valid key is refused with HTTP
401 and a JSON reason before any audio is accepted; keys are compared in
constant time, so response timing does not reveal how much of a guess
was right.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

KEYS_VARIABLE = "SPEECH_API_KEYS"


class KeyCheck(Protocol):
    """What a server asks of its keys: chapter 9 passes a key store."""

    def verify(self, candidate: str | None) -> bool: ...


# --8<-- [start:api_keys]
@dataclass(frozen=True)
class ApiKeys:
    keys: tuple[bytes, ...]

    def verify(self, candidate: str | None) -> bool:
        """True if `candidate` is a key; time independent of which."""
        if not candidate:
            return False
        given = candidate.encode()
        matched = False
        for key in self.keys:  # no early exit: every key is compared
            matched |= hmac.compare_digest(key, given)
        return matched
# --8<-- [end:api_keys]

    @classmethod
    def of(cls, *keys: str) -> ApiKeys:
        return cls(tuple(k.encode() for k in keys))


def load_api_keys(env: Mapping[str, str]) -> tuple[ApiKeys, str | None]:
    """Keys from the environment; a fresh development key if none.

    Returns the keys and, when one was made up, that development key, so
    the service can print it at start.
    """
    configured = split_keys(env.get(KEYS_VARIABLE, ""))
    if configured:
        return ApiKeys.of(*configured), None
    dev_key = "dev-" + secrets.token_urlsafe(16)
    return ApiKeys.of(dev_key), dev_key


def split_keys(text: str) -> list[str]:
    """Keys from a comma-separated list; blanks are dropped."""
    return [key.strip() for key in text.split(",") if key.strip()]


def authorization_key(header: str) -> str | None:
    """The key of an `Authorization: Token KEY` (or `Bearer KEY`)."""
    scheme, _, key = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and key.strip():
        return key.strip()
    return None

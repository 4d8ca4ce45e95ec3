"""Ephemeral client secrets: short-lived keys a browser may hold.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation",
and chapter 9's short-lived credentials. A page must never hold the
service's API key, so, as OpenAI's Realtime API does, the application's
own server trades its key for a client secret (`POST
/v1/realtime/client_secrets`: `ek_...`, from 10 s to 2 h, 10 minutes by
default), which the page sends as its Bearer key on `POST
/v1/realtime/calls`. A secret may start calls until it expires; a call
already running is not cut when it does. The store is in memory and
bounded: only a digest of each secret is kept, expired secrets are
forgotten when room is needed, and a store full of live ones refuses a
new one rather than grow. The clock is injected, so a test expires a
secret without waiting for it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TTL_S = 600  # OpenAI's default
PREFIX = "ek_"


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    anchor: Literal["created_at"] = "created_at"
    seconds: int = Field(default=DEFAULT_TTL_S, ge=10, le=7200)


class SessionConfig(BaseModel):
    """A session the secret's calls start with: a transcription session,
    whose other fields the realtime dialect reads as a session.update."""

    model_config = ConfigDict(extra="allow")
    type: Literal["transcription"]


class ClientSecretRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_after: ExpiresAfter = Field(default_factory=ExpiresAfter)
    session: SessionConfig | None = None


class ClientSecret(BaseModel):
    """OpenAI's answer: the secret, when it expires, and its session."""

    value: str
    expires_at: int  # seconds since the epoch
    session: dict[str, Any]


class Check(Enum):
    LIVE = "live"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


class StoreFullError(Exception):
    """Every slot holds a live secret: retry when some have expired."""


@dataclass(frozen=True)
class Issued:
    expires_at: float
    session: SessionConfig | None


def digest(candidate: str) -> bytes:
    # Looked up by digest: a dict's timing then says nothing about the
    # secret, and a dump of the store holds no usable key.
    return hashlib.sha256(candidate.encode()).digest()


# --8<-- [start:ephemeral_keys]
@dataclass
class EphemeralKeys:
    capacity: int
    clock: Callable[[], float] = time.time
    _issued: dict[bytes, Issued] = field(default_factory=dict)

    def issue(self, ttl_s: int, session: SessionConfig | None
              ) -> tuple[str, Issued]:
        """A new secret, live for `ttl_s` from now."""
        now = self.clock()
        if len(self._issued) >= self.capacity:
            self._issued = {k: v for k, v in self._issued.items()
                            if v.expires_at > now}  # forget the expired
        if len(self._issued) >= self.capacity:
            raise StoreFullError(
                f"{self.capacity} client secrets live; retry later")
        value = PREFIX + secrets.token_urlsafe(24)
        issued = Issued(now + ttl_s, session)
        self._issued[digest(value)] = issued
        return value, issued

    def check(self, candidate: str) -> tuple[Check, Issued | None]:
        issued = self._issued.get(digest(candidate))
        if issued is None:
            return Check.UNKNOWN, None
        if self.clock() >= issued.expires_at:
            return Check.EXPIRED, issued
        return Check.LIVE, issued
# --8<-- [end:ephemeral_keys]

    def __len__(self) -> int:
        return len(self._issued)

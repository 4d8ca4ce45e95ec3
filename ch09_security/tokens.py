"""Short-lived tokens: minted from a key, verified without a lookup.

Chapter 9, "Authentication for streaming connections". A browser must
not hold a long-lived key, and cannot set headers on a WebSocket; so
the customer's backend trades its key for a token that lives seconds
to minutes (Deepgram's grant, AssemblyAI's temporary token) and hands
it to the browser. A token is a JWT signed by this service: `sub` is
the key's owner, `key_id` the key that granted it (revoking the key
ends the streams its tokens opened), `scope` at most the key's scopes.
Verification pins the algorithm (no `alg: none`, no HS256 signed with
a public key), the audience and the issuer, and finds the public key by
`kid`; expiry is judged on the injected clock. A single-use token
carries its use in the `use` claim; redeeming it is the stream guard's
job, in the database, so that no replica lets it in twice.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PublicKey,
)

from ch09_security.key_store import KeyRecord
from ch09_security.signing_keys import ALGORITHM, SigningKeys

ISSUER = "urn:speech-api:ch09"
AUDIENCE = "speech-api"
REQUIRED = ["iss", "aud", "sub", "exp", "iat", "jti", "key_id"]
LEEWAY_S = 5  # replicas' clocks differ a little
MAX_RECENT = 1_024  # tokens remembered as verified, the oldest go


class TokenError(ValueError):
    """The token is not one this service accepts, and why."""


@dataclass(frozen=True)
class TokenClaims:
    subject: str  # the owner of the key that granted it
    key_id: str
    scopes: frozenset[str]
    expires_at_s: int
    jti: str
    single_use: bool = False
    max_session_s: int | None = None  # the stream's longest life


def looks_like_jwt(text: str) -> bool:
    return text.startswith("eyJ") and text.count(".") == 2


@dataclass
class TokenIssuer:
    keys: SigningKeys
    clock_ms: Callable[[], int]
    issuer: str = ISSUER

    def issue(self, record: KeyRecord, scopes: Iterable[str],
              ttl_s: int, *, single_use: bool = False,
              max_session_s: int | None = None,
              client_id: str | None = None) -> str:
        """A token for `record`'s owner, with at most its scopes."""
        granted = frozenset(scopes)
        if not granted <= record.scopes:
            raise TokenError("a token cannot widen its key's scopes")
        now_s = self.clock_ms() // 1000
        claims: dict[str, object] = {
            "iss": self.issuer, "aud": AUDIENCE, "sub": record.owner,
            "key_id": record.key_id, "scope": " ".join(sorted(granted)),
            "iat": now_s, "exp": now_s + ttl_s,
            "jti": secrets.token_urlsafe(16),
        }
        if single_use:
            claims["use"] = "once"
        if max_session_s is not None:
            claims["max_session_s"] = max_session_s
        if client_id is not None:  # an OAuth2 access token (RFC 9068)
            claims["client_id"] = client_id
        signing = self.keys.current()
        return jwt.encode(claims, signing.private_key, algorithm=ALGORITHM,
                          headers={"kid": signing.kid})


@dataclass
class TokenVerifier:
    keys: SigningKeys
    clock_ms: Callable[[], int]
    issuer: str = ISSUER
    refresh_ms: int = 1_000  # an unknown kid rereads the keys at most
    max_age_ms: int = 60_000  # a retired key stops verifying by then
    recent_ms: int = 1_000  # a verification serves one handshake
    _public: dict[str, Ed25519PublicKey] = field(default_factory=dict,
                                                 init=False)
    _read_at_ms: int | None = field(default=None, init=False)
    _recent: OrderedDict[str, tuple[TokenClaims, int]] = field(
        default_factory=OrderedDict, init=False)

    def verify(self, token: str) -> TokenClaims:
        """A handshake asks twice (chapter 4's check, then the stream
        guard): a token verified within `recent_ms` is not again."""
        now = self.clock_ms()
        recent = self._recent.get(token)
        if recent is not None and now - recent[1] < self.recent_ms:
            return recent[0]
        claims = self.verify_signed(token)
        self._recent[token] = (claims, now)
        while len(self._recent) > MAX_RECENT:
            self._recent.popitem(last=False)
        return claims

    # --8<-- [start:token_verify]
    def verify_signed(self, token: str) -> TokenClaims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            public = self._public_key(str(kid))
            claims = jwt.decode(
                token, public, algorithms=[ALGORITHM],  # pinned
                audience=AUDIENCE, issuer=self.issuer,
                options={"require": REQUIRED, "verify_exp": False,
                         "verify_iat": False})
        except jwt.InvalidTokenError as error:
            raise TokenError(str(error)) from None
        now_s = self.clock_ms() / 1000
        if claims["exp"] <= now_s - LEEWAY_S:  # the injected clock
            raise TokenError("token expired")
        if claims["iat"] > now_s + LEEWAY_S:
            raise TokenError("token issued in the future")
        return TokenClaims(
            subject=claims["sub"], key_id=claims["key_id"],
            scopes=frozenset(str(claims.get("scope", "")).split()),
            expires_at_s=int(claims["exp"]), jti=claims["jti"],
            single_use=claims.get("use") == "once",
            max_session_s=claims.get("max_session_s"))
    # --8<-- [end:token_verify]

    def _public_key(self, kid: str) -> Ed25519PublicKey:
        now = self.clock_ms()
        read_at = self._read_at_ms
        age = self.max_age_ms if read_at is None else now - read_at
        unknown = kid not in self._public and age >= self.refresh_ms
        if age >= self.max_age_ms or unknown:
            self._public, self._read_at_ms = self.keys.public_keys(), now
        key = self._public.get(kid)
        if key is None:
            raise TokenError(f"unknown signing key {kid!r}")
        return key

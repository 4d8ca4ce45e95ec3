"""Trading a key for a short-lived token, in each provider's dialect.

Chapter 9, "Authentication for streaming connections". Deepgram's
`POST /v1/auth/grant` takes a key (`Authorization: Token KEY`) and an
optional `ttl_seconds` (default 30, at most 3600) and answers a JWT and
its `expires_in`; the client then streams with `Authorization: Bearer
JWT`, or a browser with the subprotocols `bearer, JWT`. AssemblyAI's
`GET /v3/token?expires_in_seconds=N` (1 to 600: the window in which to
open the stream) with an optional `max_session_duration_seconds` (60 to
10,800, default 10,800) answers a token for one session, which a
browser passes as `?token=`. A token can only be granted by a key, never
by another token, and carries at most the key's streaming scopes. The
transports (chapter 4's server for GETs, the HTTP API for the POST)
render these results in their own way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ch04_streaming.auth import authorization_key
from ch09_security.credentials import Credentials
from ch09_security.key_store import Scope
from ch09_security.tokens import TokenIssuer, looks_like_jwt

STREAMING = frozenset({Scope.LISTEN, Scope.TRANSCRIBE})
DEEPGRAM_TTL_S = (1, 3600, 30)  # lowest, highest, default
ASSEMBLYAI_WINDOW_S = (1, 600)
ASSEMBLYAI_SESSION_S = (60, 10_800, 10_800)


@dataclass(frozen=True)
class Refused:
    status: int
    reason: str


@dataclass(frozen=True)
class Granted:
    token: str
    expires_in_s: int


@dataclass
class TokenGrants:
    credentials: Credentials
    issuer: TokenIssuer

    # --8<-- [start:token_grant]
    def deepgram(self, authorization: str,
                 ttl_seconds: float | None) -> Granted | Refused:
        low, high, default = DEEPGRAM_TTL_S
        ttl = default if ttl_seconds is None else ttl_seconds
        if not low <= ttl <= high:
            return Refused(400, f"ttl_seconds must be {low} to {high}")
        return self._grant(authorization_key(authorization) or "",
                           round(ttl))

    def _grant(self, key: str, ttl_s: int, *, single_use: bool = False,
               max_session_s: int | None = None) -> Granted | Refused:
        if looks_like_jwt(key):  # tokens never breed tokens
            return Refused(403, "only an API key can grant a token")
        verdict = self.credentials.check(key)
        if verdict.record is None:
            return Refused(401, verdict.reason)
        scopes = verdict.record.scopes & STREAMING
        if Scope.LISTEN not in scopes:
            return Refused(403, "this API key lacks the listen scope")
        token = self.issuer.issue(verdict.record, scopes, ttl_s,
                                  single_use=single_use,
                                  max_session_s=max_session_s)
        return Granted(token, ttl_s)
    # --8<-- [end:token_grant]

    def for_page(self, key_id: str, ttl_s: int) -> Granted | Refused:
        """A token under a key known by its id (the server's own page)."""
        verdict = self.credentials.keys.check_id(key_id)
        if verdict.record is None:
            return Refused(503, f"page tokens unavailable: {verdict.reason}")
        scopes = frozenset({Scope.LISTEN}) & verdict.record.scopes
        if not scopes:
            return Refused(503, "page tokens need a key with listen")
        token = self.issuer.issue(verdict.record, scopes, ttl_s)
        return Granted(token, ttl_s)

    def assemblyai(self, authorization: str,
                   query: Mapping[str, str]) -> Granted | Refused:
        """`Authorization: KEY` (AssemblyAI sends the key bare)."""
        try:
            window = whole(query, "expires_in_seconds", None,
                           *ASSEMBLYAI_WINDOW_S)
            low, high, default = ASSEMBLYAI_SESSION_S
            session = whole(query, "max_session_duration_seconds",
                            default, low, high)
        except ValueError as error:
            return Refused(400, str(error))
        key = authorization_key(authorization) or authorization.strip()
        return self._grant(key, window, single_use=True,
                           max_session_s=session)


def whole(query: Mapping[str, str], name: str, default: int | None,
          low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        if default is None:
            raise ValueError(f"{name} is required")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be {low} to {high}")
    return value

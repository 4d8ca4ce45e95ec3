"""OAuth2 client credentials: machine clients get short-lived tokens.

Chapter 9, "OAuth2 flows for ML API access". A backend service that
calls the API for itself (no user in the loop) uses the client
credentials grant (RFC 6749, section 4.4): it authenticates at `POST
/oauth/token` and receives an access token to send as `Authorization:
Bearer`. Here a client is an API key: its id is the `client_id`, the
key itself the `client_secret`, sent with HTTP Basic (preferred) or in
the form. The access token is one of this service's JWTs (`aud`
`speech-api`, `scope` at most the key's, `client_id` the key's id), so
every route and every stream checks it as it checks any token, and
revoking the key ends it. Errors follow RFC 6749, section 5.2.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from ch09_security.credentials import Credentials
from ch09_security.tokens import TokenIssuer, looks_like_jwt

ACCESS_TOKEN_TTL_S = 3600
GRANT_TYPE = "client_credentials"


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    expires_in: int
    scope: str
    token_type: str = "Bearer"


@dataclass(frozen=True)
class OAuthError:
    """RFC 6749's error: `error` is one of its codes."""

    status: int
    error: str
    error_description: str


def basic_credentials(header: str) -> tuple[str, str] | None:
    """`Authorization: Basic base64(id:secret)`, each part form-encoded."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


@dataclass
class ClientCredentialsGrant:
    credentials: Credentials
    issuer: TokenIssuer
    ttl_s: int = ACCESS_TOKEN_TTL_S

    # --8<-- [start:client_credentials]
    def token(self, authorization: str,
              form: Mapping[str, str]) -> TokenResponse | OAuthError:
        if form.get("grant_type") != GRANT_TYPE:
            return OAuthError(400, "unsupported_grant_type",
                              f"grant_type must be {GRANT_TYPE}")
        client = basic_credentials(authorization) or (
            form.get("client_id", ""), form.get("client_secret", ""))
        client_id, secret = client
        verdict = self.credentials.check(secret)
        record = verdict.record
        if (looks_like_jwt(secret) or record is None
                or record.key_id != client_id):
            return OAuthError(401, "invalid_client",
                              "unknown client or wrong secret")
        asked = frozenset(form.get("scope", "").split()) or record.scopes
        if not asked <= record.scopes:
            return OAuthError(400, "invalid_scope",
                              "scope is wider than the client's")
        token = self.issuer.issue(record, asked, self.ttl_s,
                                  client_id=client_id)
        return TokenResponse(token, self.ttl_s, " ".join(sorted(asked)))
    # --8<-- [end:client_credentials]

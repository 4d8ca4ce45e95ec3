"""A stream's credential: an API key, or a short-lived token from one.

Chapter 9, "Authentication for streaming connections". Chapter 4's
server asks one question before the upgrade (`KeyCheck.verify`); the
answer here covers both kinds of credential. A token (a JWT) is
verified by signature and claims, without the database, and then the
key that granted it must still be active: revoking a key also refuses
every token it granted, and ends the streams they opened.
"""

from __future__ import annotations

from dataclasses import dataclass

from ch09_security.key_verifier import KeyVerifier, Verdict
from ch09_security.tokens import TokenError, TokenVerifier, looks_like_jwt


@dataclass
class Credentials:
    keys: KeyVerifier
    tokens: TokenVerifier

    def verify(self, candidate: str | None) -> bool:
        return self.check(candidate).ok

    def check(self, candidate: str | None) -> Verdict:
        if not candidate or not looks_like_jwt(candidate):
            return self.keys.check(candidate)
        try:
            claims = self.tokens.verify(candidate)
        except TokenError as error:
            return Verdict(None, f"invalid token: {error}")
        granting = self.keys.check_id(claims.key_id)
        if granting.record is None:
            return Verdict(None, f"invalid token: {granting.reason}")
        return Verdict(granting.record, token=claims)

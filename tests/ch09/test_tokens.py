"""Short-lived tokens: what verifies, and every way a forgery fails."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from ch04_streaming.auth import ApiKeys
from ch04_streaming.stream_hooks import Refusal, StreamStart
from ch09_security.key_store import KeyStore, Scope
from ch09_security.security_layer import SecurityLayer, security_layer
from ch09_security.signing_keys import SigningKeys
from ch09_security.token_grants import Granted, Refused
from ch09_security.tokens import (
    AUDIENCE,
    ISSUER,
    TokenClaims,
    TokenError,
    TokenIssuer,
    TokenVerifier,
)
from tests.ch09.conftest import ManualClock


@pytest.fixture
def layer(store: KeyStore) -> Iterator[SecurityLayer]:
    yield security_layer(store, ApiKeys.of("dev-key"))


def granted(result: Granted | Refused) -> str:
    assert isinstance(result, Granted), result
    return result.token


def b64(data: dict[str, object]) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_granted_token_verifies_with_its_keys_owner_and_scopes(
    layer: SecurityLayer, store: KeyStore,
) -> None:
    made = store.create("acme", [Scope.LISTEN, Scope.USAGE_READ])
    token = granted(layer.grants.deepgram(f"Token {made.key}", 60))
    verdict = layer.credentials.check(token)
    assert verdict.record is not None and verdict.token is not None
    assert verdict.record.key_id == made.record.key_id
    assert verdict.token.subject == "acme"
    assert verdict.scopes == {"listen"}  # streaming scopes only
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] in {k["kid"] for k in layer.signing.jwks()["keys"]}


def test_a_token_expires_on_the_clock(layer: SecurityLayer,
                                      store: KeyStore,
                                      clock: ManualClock) -> None:
    made = store.create("acme")
    token = granted(layer.grants.deepgram(f"Token {made.key}", 30))
    clock.advance(34_000)
    assert layer.credentials.check(token).ok  # within the leeway
    clock.advance(1_000)
    assert layer.credentials.check(token).reason == (
        "invalid token: token expired")


def test_revoking_the_key_refuses_its_tokens(layer: SecurityLayer,
                                             store: KeyStore) -> None:
    made = store.create("acme")
    token = granted(layer.grants.deepgram(f"Token {made.key}", 600))
    store.revoke(made.record.key_id)
    layer.credentials.keys.forget(made.record.digest)  # as the watch does
    assert layer.credentials.check(token).reason == (
        "invalid token: the granting API key is revoked")


@pytest.mark.parametrize("ttl, status", [(0, 400), (3601, 400)])
def test_deepgram_ttl_is_bounded(layer: SecurityLayer, store: KeyStore,
                                 ttl: float, status: int) -> None:
    made = store.create("acme")
    result = layer.grants.deepgram(f"Token {made.key}", ttl)
    assert result == Refused(status, "ttl_seconds must be 1 to 3600")


def test_only_a_listening_key_grants_and_never_a_token(
    layer: SecurityLayer, store: KeyStore,
) -> None:
    reader = store.create("acme", [Scope.USAGE_READ])
    assert layer.grants.deepgram(f"Token {reader.key}", None) == Refused(
        403, "this API key lacks the listen scope")
    made = store.create("acme")
    token = granted(layer.grants.deepgram(f"Token {made.key}", None))
    assert layer.grants.deepgram(f"Bearer {token}", None) == Refused(
        403, "only an API key can grant a token")
    assert layer.grants.deepgram("Token nope", None) == Refused(
        401, "invalid API key")


@pytest.mark.parametrize("query, reason", [
    ({}, "expires_in_seconds is required"),
    ({"expires_in_seconds": "0"}, "expires_in_seconds must be 1 to 600"),
    ({"expires_in_seconds": "60", "max_session_duration_seconds": "59"},
     "max_session_duration_seconds must be 60 to 10800"),
    ({"expires_in_seconds": "soon"}, "expires_in_seconds must be a whole"
     " number"),
])
def test_assemblyai_token_parameters_are_checked(
    layer: SecurityLayer, store: KeyStore, query: dict[str, str],
    reason: str,
) -> None:
    made = store.create("acme")
    assert layer.grants.assemblyai(made.key, query) == Refused(400, reason)


async def test_an_assemblyai_token_opens_one_session_only(
    layer: SecurityLayer, store: KeyStore,
) -> None:
    made = store.create("acme")
    token = granted(layer.grants.assemblyai(
        made.key, {"expires_in_seconds": "60",
                   "max_session_duration_seconds": "120"}))
    claims = layer.credentials.check(token).token
    assert claims is not None and claims.single_use
    assert claims.max_session_s == 120
    start = StreamStart("s1", token, {})
    first = await layer.guard.admit(start)
    assert not isinstance(first, Refusal)
    second = await layer.guard.admit(StreamStart("s2", token, {}))
    assert second == Refusal(401, "invalid token: already used")
    await first.ended()


def test_a_token_cannot_widen_its_keys_scopes(store: KeyStore,
                                              clock: ManualClock) -> None:
    keys = SigningKeys(store.engine, b"x" * 32, clock)
    keys.create_schema()
    record = store.create("acme", [Scope.LISTEN]).record
    with pytest.raises(TokenError, match="cannot widen"):
        TokenIssuer(keys, clock).issue(record, [Scope.KEYS_ADMIN], 60)


class Forgeries:
    """Tokens made by someone without the signing key, or for elsewhere."""

    def __init__(self, layer: SecurityLayer, store: KeyStore) -> None:
        self.record = store.create("acme").record
        self.good = granted(layer.grants.deepgram(
            f"Token {store.create('acme').key}", 60))
        self.claims = jwt.decode(self.good,
                                 options={"verify_signature": False})
        self.kid = jwt.get_unverified_header(self.good)["kid"]
        self.signing = layer.signing


def refusal(layer: SecurityLayer, token: str) -> str:
    verdict = layer.credentials.check(token)
    assert not verdict.ok
    return verdict.reason


def test_alg_none_is_refused(layer: SecurityLayer, store: KeyStore) -> None:
    forged = Forgeries(layer, store)
    header = b64({"alg": "none", "typ": "JWT", "kid": forged.kid})
    token = f"{header}.{b64(forged.claims)}."
    assert refusal(layer, token) == (
        "invalid token: The specified alg value is not allowed")


def test_hs256_signed_with_the_public_key_is_refused(
    layer: SecurityLayer, store: KeyStore,
) -> None:
    forged = Forgeries(layer, store)
    public = forged.signing.current().public_key.public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64({"alg": "HS256", "typ": "JWT", "kid": forged.kid})
    body = b64(forged.claims)
    signature = base64.urlsafe_b64encode(hmac.new(
        public, f"{header}.{body}".encode(), hashlib.sha256).digest()
    ).rstrip(b"=").decode()
    assert refusal(layer, f"{header}.{body}.{signature}") == (
        "invalid token: The specified alg value is not allowed")


def test_a_tampered_payload_fails_its_signature(
    layer: SecurityLayer, store: KeyStore,
) -> None:
    forged = Forgeries(layer, store)
    header, _, signature = forged.good.split(".")
    wider = {**forged.claims, "scope": "listen keys:admin"}
    assert refusal(layer, f"{header}.{b64(wider)}.{signature}") == (
        "invalid token: Signature verification failed")


@pytest.mark.parametrize("claim, value, reason", [
    ("aud", "another-api", "Audience doesn't match"),
    ("iss", "urn:someone-else", "Invalid issuer"),
])
def test_wrong_audience_or_issuer_is_refused(
    layer: SecurityLayer, store: KeyStore, claim: str, value: str,
    reason: str,
) -> None:
    forged = Forgeries(layer, store)
    claims = {**forged.claims, claim: value}
    token = jwt.encode(claims, forged.signing.current().private_key,
                       algorithm="EdDSA", headers={"kid": forged.kid})
    assert refusal(layer, token) == f"invalid token: {reason}"
    assert (claims["aud"], claims["iss"]) != (AUDIENCE, ISSUER)


def test_a_retired_signing_key_stops_verifying(
    layer: SecurityLayer, store: KeyStore, clock: ManualClock,
) -> None:
    made = store.create("acme")
    old = granted(layer.grants.deepgram(f"Token {made.key}", 3600))
    old_kid = jwt.get_unverified_header(old)["kid"]
    layer.signing.rotate()
    new = granted(layer.grants.deepgram(f"Token {made.key}", 3600))
    assert jwt.get_unverified_header(new)["kid"] != old_kid
    assert layer.credentials.check(old).ok  # rotation keeps old tokens
    layer.signing.retire(old_kid)
    clock.advance(60_000)  # the verifiers reread their keys by then
    assert refusal(layer, old) == (
        f"invalid token: unknown signing key {old_kid!r}")
    assert layer.credentials.check(new).ok


def test_a_verifier_rereads_keys_for_a_new_kid(store: KeyStore,
                                               clock: ManualClock) -> None:
    keys = SigningKeys(store.engine, b"y" * 32, clock)
    keys.create_schema()
    verifier = TokenVerifier(keys, clock)
    issuer = TokenIssuer(keys, clock)
    record = store.create("acme").record
    assert verifier.verify(issuer.issue(record, ["listen"], 60)).subject
    keys.rotate()  # another replica rotated
    clock.advance(verifier.refresh_ms)
    assert verifier.verify(issuer.issue(record, ["listen"], 60)).subject


def test_a_token_from_the_future_is_refused(layer: SecurityLayer,
                                            store: KeyStore,
                                            clock: ManualClock) -> None:
    record = store.create("acme").record
    clock.advance(60_000)  # the issuing replica's clock runs ahead
    token = layer.grants.issuer.issue(record, ["listen"], 600)
    clock.advance(-60_000)
    assert refusal(layer, token) == (
        "invalid token: token issued in the future")


def test_a_handshakes_second_check_reuses_the_first(
    layer: SecurityLayer, store: KeyStore, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = store.create("acme")
    token = granted(layer.grants.deepgram(f"Token {made.key}", 60))
    verifier = layer.credentials.tokens
    verified: list[str] = []
    signed = verifier.verify_signed

    def counted(token: str) -> TokenClaims:
        verified.append(token)
        return signed(token)

    monkeypatch.setattr(verifier, "verify_signed", counted)
    assert layer.credentials.verify(token)  # chapter 4, at the upgrade
    assert layer.credentials.check(token).ok  # the stream guard
    assert len(verified) == 1
    clock.advance(verifier.recent_ms)
    assert layer.credentials.check(token).ok
    assert len(verified) == 2  # verified afresh after recent_ms

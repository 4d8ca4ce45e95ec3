"""This chapter's parts, wired for one key store: what a server wraps.

Chapter 9, "Authentication for streaming connections". One store of
keys and signing keys yields everything a streaming server needs to be
secured by composition: the `Credentials` it checks before an upgrade,
the `StreamGuard` hooks, the token endpoints as GET routes, and the
`KeyWatch` that ends revoked streams; the guard applies the abuse
limits it is given (`abuse_limits.py`). The composition root
(`serve.py`) and the tests build it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from ch04_streaming.auth import ApiKeys
from ch04_streaming.server import HttpRoute
from ch09_security.abuse_limits import AbuseLimits, no_browsers
from ch09_security.credentials import Credentials
from ch09_security.grant_routes import stream_port_routes
from ch09_security.key_store import KeyStore
from ch09_security.key_verifier import KeyVerifier
from ch09_security.key_watch import KeyWatch, RunningStreams
from ch09_security.oauth import ClientCredentialsGrant
from ch09_security.redemptions import Redemptions
from ch09_security.signing_keys import SigningKeys
from ch09_security.stream_guard import StreamGuard
from ch09_security.token_grants import TokenGrants
from ch09_security.tokens import TokenIssuer, TokenVerifier


@dataclass
class SecurityLayer:
    credentials: Credentials
    grants: TokenGrants
    oauth: ClientCredentialsGrant
    signing: SigningKeys
    guard: StreamGuard
    watch: KeyWatch
    page_key_id: str | None = None  # the browser page's tokens, if any

    @property
    def routes(self) -> dict[str, HttpRoute]:
        return stream_port_routes(self.grants, self.signing,
                                  self.page_key_id)


# --8<-- [start:security_layer]
def security_layer(store: KeyStore, development: ApiKeys,
                   poll_s: float = 0.5,
                   page_key_id: str | None = None,
                   limits: AbuseLimits | None = None) -> SecurityLayer:
    clock = store.clock_ms
    signing = SigningKeys(store.engine, store.hasher.secret, clock)
    redemptions = Redemptions(store.engine, clock)
    for table in (signing, redemptions):
        table.create_schema()
    signing.current()  # a signing key from the start: the JWKS has it
    keys = KeyVerifier(store, development)
    credentials = Credentials(keys, TokenVerifier(signing, clock))
    streams = RunningStreams()
    issuer = TokenIssuer(signing, clock)
    return SecurityLayer(
        credentials=credentials,
        grants=TokenGrants(credentials, issuer),
        oauth=ClientCredentialsGrant(credentials, issuer),
        signing=signing,
        guard=StreamGuard(credentials, streams, redemptions,
                          limits or no_browsers()),
        watch=KeyWatch(keys, streams, poll_s=poll_s),
        page_key_id=page_key_id)
# --8<-- [end:security_layer]

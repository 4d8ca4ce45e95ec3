"""The keys that sign this service's tokens, shared by every replica.

Chapter 9, "Authentication for streaming connections" and "OAuth2 flows
for ML API access". Tokens are JWTs signed with Ed25519 (asymmetric: a
replica or a resource server verifies with the public key only, and
cannot mint). Each signing key has a `kid`, which every token names in
its header; the public keys are published as a JWKS. Rotation adds a
key and signs with the newest, while tokens signed by the older keys
stay verifiable until those keys are retired. The private keys live in
the database, encrypted with AES-256-GCM under a key derived (HKDF)
from the server secret, so replicas share them and a copy of the
table alone signs nothing.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    update,
)

from ch09_security.key_store import reading

ALGORITHM = "EdDSA"
metadata = MetaData()
signing_keys = Table(
    "signing_keys", metadata,
    Column("kid", String(40), primary_key=True),
    Column("sealed_private_key", LargeBinary, nullable=False),
    Column("public_jwk", Text, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("retired_at_ms", BigInteger),
)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey
    created_at_ms: int

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


def sealing_key(server_secret: bytes) -> AESGCM:
    """A key of its own for sealing signing keys, from the secret."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"ch09 signing keys").derive(server_secret)
    return AESGCM(derived)


@dataclass
class SigningKeys:
    engine: Engine
    server_secret: bytes
    clock_ms: Callable[[], int]

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def rotate(self) -> SigningKey:
        """A new signing key; tokens are signed with it from now on."""
        kid = secrets.token_urlsafe(12)
        private_key = Ed25519PrivateKey.generate()
        raw = private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption())
        nonce = secrets.token_bytes(12)
        sealed = nonce + sealing_key(self.server_secret).encrypt(
            nonce, raw, kid.encode())  # bound to its kid
        jwk = OKPAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        jwk.update(kid=kid, alg=ALGORITHM, use="sig")
        with self.engine.begin() as connection:
            newest = connection.execute(
                select(func.max(signing_keys.c.created_at_ms))).scalar()
            # Strictly newer than any key, even within one millisecond:
            # the newest key is the one tokens are signed with.
            now = max(self.clock_ms(), (newest or 0) + 1)
            connection.execute(signing_keys.insert().values(
                kid=kid, sealed_private_key=sealed,
                public_jwk=json.dumps(jwk), created_at_ms=now))
        return SigningKey(kid, private_key, now)

    def current(self) -> SigningKey:
        """The newest active key, made on first use."""
        query = (select(signing_keys)
                 .where(signing_keys.c.retired_at_ms.is_(None))
                 .order_by(signing_keys.c.created_at_ms.desc(),
                           signing_keys.c.kid).limit(1))
        with reading(self.engine) as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            return self.rotate()
        sealed: bytes = row["sealed_private_key"]
        raw = sealing_key(self.server_secret).decrypt(
            sealed[:12], sealed[12:], str(row["kid"]).encode())
        return SigningKey(str(row["kid"]),
                          Ed25519PrivateKey.from_private_bytes(raw),
                          int(row["created_at_ms"]))

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every active key's public half, by kid."""
        keys: dict[str, Ed25519PublicKey] = {}
        for jwk in self.jwks()["keys"]:
            public = OKPAlgorithm.from_jwk(jwk)
            assert isinstance(public, Ed25519PublicKey)
            keys[str(jwk["kid"])] = public
        return keys

    def jwks(self) -> dict[str, list[dict[str, object]]]:
        """The JSON Web Key Set: `/.well-known/jwks.json`."""
        query = (select(signing_keys.c.public_jwk)
                 .where(signing_keys.c.retired_at_ms.is_(None))
                 .order_by(signing_keys.c.created_at_ms))
        with reading(self.engine) as connection:
            rows = connection.execute(query).scalars().all()
        return {"keys": [json.loads(row) for row in rows]}

    def active(self) -> list[tuple[str, int]]:
        """Each active key's kid and creation time, oldest first: the
        last one signs."""
        query = (select(signing_keys.c.kid, signing_keys.c.created_at_ms)
                 .where(signing_keys.c.retired_at_ms.is_(None))
                 .order_by(signing_keys.c.created_at_ms))
        with reading(self.engine) as connection:
            rows = connection.execute(query).all()
        return [(str(kid), int(created)) for kid, created in rows]

    def retire(self, kid: str) -> None:
        """Tokens signed with `kid` stop verifying, everywhere."""
        with self.engine.begin() as connection:
            connection.execute(
                update(signing_keys).where(signing_keys.c.kid == kid)
                .values(retired_at_ms=self.clock_ms()))

"""Single-use tokens, redeemed once across every replica.

Chapter 9, "Authentication for streaming connections". AssemblyAI's
temporary token opens one session: a second connection with the same
token is refused even on another replica. The token's id (`jti`) is
inserted into a table whose primary key it is; the database refuses a
second insert, which is the whole check. Rows outlive their token's
expiry only until the next sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    MetaData,
    String,
    Table,
    delete,
)
from sqlalchemy.exc import IntegrityError

GRACE_MS = 60_000  # past expiry, beyond any verifier's leeway
metadata = MetaData()
redeemed_tokens = Table(
    "redeemed_tokens", metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at_ms", BigInteger, nullable=False),
)


@dataclass
class Redemptions:
    engine: Engine
    clock_ms: Callable[[], int]
    sweep_every: int = 1_000  # redemptions between sweeps
    _since_sweep: int = 0

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def redeem(self, jti: str, expires_at_s: int) -> bool:
        """True the first time `jti` is redeemed, anywhere; then False."""
        try:
            with self.engine.begin() as connection:
                connection.execute(redeemed_tokens.insert().values(
                    jti=jti, expires_at_ms=expires_at_s * 1000))
        except IntegrityError:
            return False
        self._since_sweep += 1
        if self._since_sweep >= self.sweep_every:
            self.sweep()
        return True

    def sweep(self) -> None:
        """Forget tokens that have expired: they can no longer be used."""
        self._since_sweep = 0
        with self.engine.begin() as connection:
            connection.execute(delete(redeemed_tokens).where(
                redeemed_tokens.c.expires_at_ms < self.clock_ms() - GRACE_MS))

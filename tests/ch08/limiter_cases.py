"""What the tier-limit tests share: a tier, a clock and a customer."""

from __future__ import annotations

from ch08_metering.accounts import Customer, Tier

FREE = Tier("free", max_concurrent_streams=2, audio_seconds_per_minute=120)
T0 = 1_700_000_000.0  # any clock will do; Unix time, as in service


def customer(id: str = "c1", tier: Tier = FREE) -> Customer:
    return Customer(id, tier, f"cus_{id}")

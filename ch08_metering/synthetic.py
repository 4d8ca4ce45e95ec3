"""`python -m ch08_metering simulate`: a realistic month of usage.

Chapter 8, "Billing models" and "Feature-based pricing stacking". An
invoice of a few demo streams is a few cents, and cents do not show how
billing models differ. This writes a month of synthetic, seeded usage
into the ledger for customers of different shapes: a voice-agent
start-up (many short calls, speech synthesis and LLM tokens beside the
audio) and a contact centre (long calls on weekdays, every one
diarized, most redacted). Streams are metered as the service meters
them, one event per 60 s interval, so `invoice` and `explain` read them
exactly as they read real traffic, and writing the same month twice
adds nothing (every event keeps its id).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from ch08_metering.database import add_database_argument, open_engine
from ch08_metering.events import Feature, Meter, UsageEvent, usage_event
from ch08_metering.invoice import InvoiceError, Period, parse_period
from ch08_metering.ledger import Accepted, Ledger

INTERVAL_MS = 60_000  # the service meters a stream once a minute
SOURCE = "simulate"


@dataclass(frozen=True)
class Profile:
    """The shape of one customer's traffic."""

    calls_per_weekday: float
    calls_per_weekend_day: float
    median_call_s: float
    call_spread: float  # sigma of the log-normal call length
    features: dict[Feature, float]  # share of calls using each add-on
    characters_per_call: int = 0  # speech synthesis, as ElevenLabs bills
    tokens_per_call: int = 0  # an LLM's tokens, in and out


PROFILES: dict[str, Profile] = {
    # a voice agent: short turns, every call answered by TTS and an LLM
    "demo": Profile(160, 120, 45.0, 0.9, {"pii_redaction": 0.05},
                    characters_per_call=900, tokens_per_call=2_500),
    # a contact centre: long calls on weekdays, analytics on every call
    "acme": Profile(300, 40, 240.0, 0.7, {
        "diarization": 1.0, "pii_redaction": 0.6, "summarization": 0.3}),
}


def call_lengths_ms(profile: Profile, calls: int,
                    rng: np.random.Generator) -> np.ndarray:
    seconds = rng.lognormal(np.log(profile.median_call_s),
                            profile.call_spread, calls)
    return np.minimum(seconds, 3 * 3600).round(3) * 1000  # 3 h sessions


def call_events(customer: str, stream_id: str, start_s: float,
                length_ms: int, features: tuple[Feature, ...]
                ) -> Iterator[UsageEvent]:
    """One event per full or partial minute of the call."""
    for sequence, offset in enumerate(range(0, length_ms, INTERVAL_MS)):
        value = min(INTERVAL_MS, length_ms - offset)
        yield usage_event(
            stream_id=stream_id, sequence=sequence, customer=customer,
            source=SOURCE, meter="audio_ms", value=value,
            features=features, at=start_s + (offset + value) / 1000)


def day_events(customer: str, profile: Profile, day: int, day_start_s: float,
               weekend: bool, rng: np.random.Generator
               ) -> Iterator[UsageEvent]:
    mean = (profile.calls_per_weekend_day if weekend
            else profile.calls_per_weekday)
    calls = int(rng.poisson(mean))
    starts = np.sort(rng.uniform(0, 20 * 3600, calls)) + 2 * 3600
    for n, (start, length) in enumerate(zip(
            starts, call_lengths_ms(profile, calls, rng), strict=True)):
        features = tuple(f for f, share in profile.features.items()
                         if rng.random() < share)
        yield from call_events(customer, f"{customer}-d{day}-c{n}",
                               day_start_s + float(start), int(length),
                               features)
    per_call: tuple[tuple[Meter, int], ...] = (
        ("characters", profile.characters_per_call),
        ("tokens", profile.tokens_per_call))
    for meter, each in per_call:
        if each and calls:
            yield usage_event(
                stream_id=f"{customer}-d{day}-{meter}", sequence=0,
                customer=customer, source=SOURCE, meter=meter,
                value=each * calls, features=(),
                at=day_start_s + 23 * 3600)


def synthetic_month(period: Period, seed: int,
                    customers: dict[str, Profile] = PROFILES
                    ) -> list[UsageEvent]:
    """Every customer's usage of `period`; the same seed, the same."""
    rng = np.random.default_rng(seed)
    events: list[UsageEvent] = []
    day, start = 0, period.start
    while start < period.end:
        for customer, profile in customers.items():
            events += day_events(customer, profile, day, start.timestamp(),
                                 start.weekday() >= 5, rng)
        day, start = day + 1, start + timedelta(days=1)
    return events


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="write a synthetic month of usage into the ledger",
        description="A seeded month of usage for the demo customers, "
        "metered as the service meters streams; run it twice and "
        "nothing is added.")
    parser.add_argument("--period", required=True,
                        help="a calendar month in UTC, like 2026-11")
    parser.add_argument("--seed", type=int, default=7)
    add_database_argument(parser)


def run(args: argparse.Namespace) -> int:
    try:
        period = parse_period(args.period)
    except InvoiceError as error:
        print(f"error: {error}")
        return 2
    events = synthetic_month(period, args.seed)
    engine = open_engine(args.database_url)
    try:
        ledger = Ledger(engine)
        ledger.create()
        outcomes = ledger.ingest(events, now_ms=period.end_ms)
    finally:
        engine.dispose()
    added = sum(1 for outcome in outcomes if isinstance(outcome, Accepted))
    for customer in PROFILES:
        mine = [e for e in events if e.subject == customer
                and e.data.meter == "audio_ms"]
        hours = sum(e.data.value for e in mine) / 3_600_000
        streams = len({e.data.stream_id for e in mine})
        print(f"{customer}: {streams:,} calls, {hours:,.1f} audio hours")
    print(f"{len(events):,} events for {period.name} (seed {args.seed}):"
          f" {added:,} new, {len(events) - added:,} already there")
    return 0

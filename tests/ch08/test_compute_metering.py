"""Compute time and API calls: from chapter 3's device to usage events.

A device whose batches cost 20 ms plus 100 ms per audio second, and
sleeps that take no time, so every figure below is worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from ch03_gpu.device import Accelerator, CostModel
from ch04_streaming.engine import (
    DecodeRequest,
    LocalMatching,
    MockRecognizer,
    device_shares,
    load_lexicon,
)
from ch04_streaming.mock_matcher import SAMPLE_RATE, Lexicon
from ch04_streaming.stream_hooks import StreamStart
from ch08_metering.accounts import key_digest, parse_accounts
from ch08_metering.events import UsageEvent
from ch08_metering.hooks import MeteredStream, MeteringHooks
from ch08_metering.limits import LocalLimiter
from ch08_metering.metering import StreamMeter
from ch08_metering.rollup import event_problem, stripe_event_names
from examples.fixtures import MANIFEST_PATH

COST = CostModel(fixed_ms=20.0, per_audio_s_ms=100.0)
ACCOUNTS = parse_accounts({
    "tiers": {"big": {"max_concurrent_streams": 100,
                      "audio_seconds_per_minute": 100_000}},
    "customers": {"acme": {"tier": "big", "stripe_customer_id": "cus_a",
                           "key_sha256": [key_digest("acme-key")]}},
})


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return load_lexicon(MANIFEST_PATH)


async def no_sleep(seconds: float) -> None:
    return None


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


async def decoded_device_s(lexicon: Lexicon,
                           audio_s: list[float]) -> list[float]:
    """Each request's device time, when they share one batch."""
    recognizer = MockRecognizer(LocalMatching(lexicon),
                                Accelerator(COST, sleep=no_sleep))
    batch = [DecodeRequest(recognizer.new_utterance(0.0), silence(s), False)
             for s in audio_s]
    return [h.device_s for h in await recognizer.decode(batch)]


def test_a_batch_of_one_gets_all_of_its_device_time() -> None:
    assert device_shares(0.120, [16_000]) == [0.120]


def test_a_shared_batch_is_split_by_audio() -> None:
    assert device_shares(0.420, [16_000, 48_000]) == [0.105, 0.315]
    assert device_shares(0.040, [0, 0]) == [0.020, 0.020]  # no audio


async def test_a_decode_reports_the_device_time_it_took(
        lexicon: Lexicon) -> None:
    # 20 ms + 100 ms x 1 s = 120 ms, all of it this request's.
    [alone] = await decoded_device_s(lexicon, [1.0])
    assert round(alone * 1000, 6) == 120.0
    # 20 ms + 100 ms x (1 s + 3 s) = 420 ms, split 1:3.
    shares = await decoded_device_s(lexicon, [1.0, 3.0])
    assert [round(s * 1000, 6) for s in shares] == [105.0, 315.0]


def test_compute_time_is_cut_in_whole_milliseconds() -> None:
    meter = StreamMeter("s", "acme", (), started_at=0.0)
    meter.compute(0.105)
    meter.compute(0.0004)  # 105.4 ms so far: 105 are cut
    first = meter.cut_compute(1.0)
    meter.compute(0.315)  # 420.4 ms in all
    second = meter.cut_compute(2.0)
    assert first is not None and second is not None
    assert (first.id, first.data.meter, first.data.value) == (
        "s-compute_ms-1", "compute_ms", 105)
    assert (second.id, second.data.value) == ("s-compute_ms-2", 315)
    assert meter.cut_compute(3.0) is None  # nothing since


class Collected(list[UsageEvent]):
    async def deliver(self, event: UsageEvent) -> None:
        self.append(event)


async def test_an_admitted_stream_is_one_api_call_and_its_compute_time(
        ) -> None:
    events = Collected()
    hooks = MeteringHooks(ACCOUNTS, LocalLimiter(), events.deliver,
                          interval_s=60.0, clock=lambda: 1_800_000_000.0)
    tracker = await hooks.admit(StreamStart("s1", "acme-key", {}))
    assert isinstance(tracker, MeteredStream)
    assert [(e.id, e.data.meter, e.data.value) for e in events] == [
        ("s1-api_calls-1", "api_calls", 1)]
    await tracker.audio(1.0)
    tracker.compute(0.105)
    tracker.compute(0.315)
    await tracker.ended()
    assert [(e.id, e.data.meter, e.data.value) for e in events[1:]] == [
        ("s1-1", "audio_ms", 1000), ("s1-compute_ms-1", "compute_ms", 420)]


async def test_a_refused_stream_is_no_api_call() -> None:
    events = Collected()
    hooks = MeteringHooks(ACCOUNTS, LocalLimiter(), events.deliver)
    refusal = await hooks.admit(StreamStart("s1", "unknown-key", {}))
    assert not isinstance(refusal, MeteredStream)
    assert events == []


def test_compute_and_api_calls_have_their_stripe_meters() -> None:
    assert stripe_event_names("compute_ms", ()) == ["speech_compute_ms"]
    assert stripe_event_names("api_calls", ()) == ["speech_api_calls"]
    assert event_problem("compute_ms", ()) is None
    assert event_problem("api_calls", ()) is None

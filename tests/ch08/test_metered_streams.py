"""Chapter 4's streams with chapter 8's hooks: metered, and limited.

A real server in this process, with the mock engine on a zero-cost
device, metering into a real ledger and limits from a test tier.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ch03_gpu.device import Accelerator, CostModel, DeviceState
from ch04_streaming.client import (
    DeepgramClient,
    load_audio,
    stream,
)
from ch04_streaming.engine import load_lexicon
from ch04_streaming.mock_matcher import Lexicon
from ch08_metering.accounts import Accounts, key_digest, parse_accounts
from ch08_metering.hooks import MeteringHooks, billed_features
from ch08_metering.ledger import Ledger
from ch08_metering.limits import Limiter, LocalLimiter
from ch08_metering.limits_redis import RedisLimiter
from ch08_metering.metering import LedgerWriter
from examples.fixtures import MANIFEST_PATH
from tests.ch04.harness import (
    MANIFEST,
    Running,
    audio_of,
    interleave,
    pcm16_of,
    reference,
    running_server,
)
from tests.ch08.conftest import SharedRedis


async def no_sleep(seconds: float) -> None:
    return None


def tier_accounts(streams: int, audio_per_minute: float) -> Accounts:
    return parse_accounts({
        "tiers": {
            "tiny": {"max_concurrent_streams": streams,
                     "audio_seconds_per_minute": audio_per_minute},
            "big": {"max_concurrent_streams": 100,
                    "audio_seconds_per_minute": 100_000},
        },
        "customers": {
            "small": {"tier": "tiny", "stripe_customer_id": "cus_small",
                      "key_sha256": [key_digest("small-key")]},
            "acme": {"tier": "big", "stripe_customer_id": "cus_acme",
                     "key_sha256": [key_digest("acme-key")]},
        },
    })


@dataclass
class Metered(Running):
    writer: LedgerWriter
    ledger: Ledger

    async def usage(self) -> dict[str, int]:
        """Audio ms per customer, once every stream has ended and its
        events are written."""
        async with asyncio.timeout(10):
            while self.server.handlers or self.server.admitted:
                await asyncio.sleep(0.01)
        await self.writer.close(timeout_s=10)
        totals: dict[str, int] = {}
        for (customer, meter, _), value in self.ledger.totals().items():
            if meter == "audio_ms":
                totals[customer] = totals.get(customer, 0) + value
        return totals


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    # As in tests/ch04/conftest.py, whose fixtures are not seen here.
    return load_lexicon(MANIFEST_PATH)


@asynccontextmanager
async def metered(ledger: Ledger, lexicon: Lexicon, accounts: Accounts,
                  interval_s: float = 60.0, limiter: Limiter | None = None,
                  device: Accelerator | None = None,
                  ) -> AsyncIterator[Metered]:
    """Chapter 4's test server, with metering and limits as its hooks."""
    writer = LedgerWriter(ledger, lambda: round(time.time() * 1000))
    hooks = MeteringHooks(accounts, limiter or LocalLimiter(), writer.put,
                          interval_s)
    writer.start()
    try:
        async with running_server(
                lexicon, hooks=hooks, device=device,
                keys=("small-key", "acme-key", "orphan-key")) as running:
            yield Metered(running.server, running.recognizer, writer,
                          ledger)
    finally:
        await writer.close(timeout_s=10)


def listen(url: str, **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in {
        "encoding": "linear16", "sample_rate": "16000", **query}.items())
    return f"{url}/v1/listen?{params}"


async def test_a_stream_is_metered_by_its_audio_and_features(
        ledger: Ledger, lexicon: Lexicon) -> None:
    audio = load_audio(audio_of("quick_brown_fox"))
    async with metered(ledger, lexicon, tier_accounts(5, 600)) as m:
        report = await stream(m.url, DeepgramClient(diarize="true"),
                              "acme-key", audio)
        assert report.transcript == reference("quick_brown_fox")
        await m.usage()
    expected_ms = round(MANIFEST.get("quick_brown_fox").duration_s * 1000)
    assert ledger.totals() == {("acme", "audio_ms", ("diarization",)):
                               expected_ms,
                               ("acme", "api_calls", ()): 1}


async def test_a_stream_is_metered_by_its_device_time_and_one_call(
        ledger: Ledger, lexicon: Lexicon) -> None:
    """Every batch is this stream's alone: its compute time is all the
    time the device was busy, 20 ms a decode plus 100 ms per second."""
    device = Accelerator(CostModel(fixed_ms=20.0, per_audio_s_ms=100.0),
                         sleep=no_sleep, state=DeviceState.READY)
    audio = load_audio(audio_of("quick_brown_fox"))
    async with metered(ledger, lexicon, tier_accounts(5, 600),
                       device=device) as m:
        await stream(m.url, DeepgramClient(), "acme-key", audio)
        await m.usage()
    totals = ledger.totals()
    assert device.batches > 1
    assert totals[("acme", "compute_ms", ())] == round(
        device.busy_s * 1000)
    assert totals[("acme", "compute_ms", ())] >= 20 * device.batches
    assert totals[("acme", "api_calls", ())] == 1


async def test_real_time_metering_makes_an_event_per_frame(
        ledger: Ledger, lexicon: Lexicon) -> None:
    audio = load_audio(audio_of("quick_brown_fox"))
    async with metered(ledger, lexicon, tier_accounts(5, 600),
                       interval_s=0.0) as m:
        report = await stream(m.url, DeepgramClient(), "acme-key", audio)
        usage = await m.usage()
    start, end = 0, 2**62
    raw = [e for e in ledger.events_of("acme", start, end)
           if e.meter == "audio_ms"]
    assert len(raw) == report.chunks_sent
    assert usage["acme"] == round(
        len(audio.payload) / audio.bytes_per_second * 1000)
    stream_id = raw[0].stream_id
    assert {e.id for e in raw} == {
        f"{stream_id}-{n}" for n in range(1, report.chunks_sent + 1)}


async def test_over_the_stream_limit_is_429_before_the_upgrade(
        ledger: Ledger, lexicon: Lexicon) -> None:
    async with metered(ledger, lexicon, tier_accounts(1, 600)) as m:
        async with connect(listen(m.url), additional_headers={
                "Authorization": "Token small-key"}) as first:
            with pytest.raises(InvalidStatus) as caught:
                async with connect(listen(m.url), additional_headers={
                        "Authorization": "Token small-key"}):
                    pass
            other = await connect(listen(m.url), additional_headers={
                "Authorization": "Token acme-key"})  # another customer
            await other.close()
            await first.send(json.dumps({"type": "CloseStream"}))
            await asyncio.wait_for(first.wait_closed(), 10)
        async with connect(listen(m.url), additional_headers={
                "Authorization": "Token small-key"}) as again:
            await again.close()  # the slot was released
    response = caught.value.response
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert "1 concurrent stream" in json.loads(response.body)["reason"]


async def test_replicas_sharing_redis_share_the_stream_limit(
        ledger: Ledger, lexicon: Lexicon, shared: SharedRedis) -> None:
    accounts = tier_accounts(1, 600)
    auth = {"Authorization": "Token small-key"}
    async with metered(ledger, lexicon, accounts,
                       limiter=shared.replica()) as one, \
            metered(ledger, lexicon, accounts,
                    limiter=shared.replica()) as two:
        async with connect(listen(one.url), additional_headers=auth) as s:
            with pytest.raises(InvalidStatus) as caught:
                async with connect(listen(two.url), additional_headers=auth):
                    pass
            await s.send(json.dumps({"type": "CloseStream"}))
            await asyncio.wait_for(s.wait_closed(), 10)
        await one.usage()  # its stream has ended: the slot is free
        async with connect(listen(two.url), additional_headers=auth) as s:
            await s.close()
    assert caught.value.response.status_code == 429


async def test_when_redis_is_down_streams_go_on_unlimited_and_metered(
        ledger: Ledger, lexicon: Lexicon,
        caplog: pytest.LogCaptureFixture) -> None:
    audio = load_audio(audio_of("quick_brown_fox"))
    nowhere = RedisLimiter.from_url("redis://127.0.0.1:1/0")  # refused
    async with metered(ledger, lexicon, tier_accounts(5, 2.0),
                       limiter=nowhere) as m:
        report = await stream(m.url, DeepgramClient(), "small-key", audio)
        usage = await m.usage()
    await nowhere.aclose()
    assert report.transcript == reference("quick_brown_fox")
    assert usage == {"small": round(
        MANIFEST.get("quick_brown_fox").duration_s * 1000)}
    assert "event=limits_unavailable" in caplog.text


async def test_over_the_audio_budget_closes_4029_and_bills_what_came(
        ledger: Ledger, lexicon: Lexicon) -> None:
    audio = load_audio(audio_of("quick_brown_fox"))
    async with metered(ledger, lexicon, tier_accounts(5, 2.0)) as m:
        report = await stream(m.url, DeepgramClient(), "small-key", audio)
        usage = await m.usage()
    assert report.close_code == 4029
    assert "2 audio s per minute" in report.close_reason
    assert 2000 <= usage["small"] <= 2200  # the frame that went over, too


async def test_a_key_without_a_customer_is_refused(
        ledger: Ledger, lexicon: Lexicon) -> None:
    async with metered(ledger, lexicon, tier_accounts(5, 600)) as m:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(listen(m.url), additional_headers={
                    "Authorization": "Token orphan-key"}):
                pass
    assert caught.value.response.status_code == 403


async def test_a_client_that_vanishes_is_still_billed(
        ledger: Ledger, lexicon: Lexicon) -> None:
    payload = load_audio(audio_of("quick_brown_fox")).payload
    async with metered(ledger, lexicon, tier_accounts(5, 600)) as m:
        socket = await connect(listen(m.url), additional_headers={
            "Authorization": "Token acme-key"})
        for offset in range(0, 32_000, 3_200):  # one second of audio
            await socket.send(payload[offset:offset + 3_200])
        socket.transport.abort()  # gone, without a close frame
        usage = await m.usage()
    assert usage == {"acme": 1000}


@pytest.mark.parametrize(("multichannel", "billed_ms"), [
    ("true", 2000),  # each channel transcribed, each billed
    ("false", 1000),  # mixed down: transcribed, and billed, once
])
async def test_a_stereo_stream_is_billed_per_channel_transcribed(
        ledger: Ledger, lexicon: Lexicon, multichannel: str,
        billed_ms: int) -> None:
    left = pcm16_of("quick_brown_fox")[:16_000]  # a second each
    stereo = interleave(left, left).astype("<i2").tobytes()
    async with metered(ledger, lexicon, tier_accounts(5, 600)) as m:
        url = listen(m.url, channels="2", multichannel=multichannel)
        async with connect(url, additional_headers={
                "Authorization": "Token acme-key"}) as socket:
            for offset in range(0, len(stereo), 6_400):
                await socket.send(stereo[offset:offset + 6_400])
            await socket.send(json.dumps({"type": "CloseStream"}))
            async for _ in socket:
                pass  # the results, until the server closes
        usage = await m.usage()
    assert usage == {"acme": billed_ms}


@pytest.mark.parametrize(("query", "features"), [
    ({}, ()),
    ({"diarize": "true"}, ("diarization",)),
    ({"diarize": "false", "redact": "pii"}, ("pii_redaction",)),
    ({"summarize": "v2", "redact": "pci", "diarize": "1"},
     ("pii_redaction", "diarization", "summarization")),
])
def test_billed_features_come_from_the_query(
        query: dict[str, str], features: tuple[str, ...]) -> None:
    assert billed_features(query) == features

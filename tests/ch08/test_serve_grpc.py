"""`python -m ch08_metering serve` meters and limits gRPC streams too.

Chapter 5's gRPC service runs in the metered process behind chapter 8's
tier-limit interceptor: a stream over the tier's concurrent-stream
limit is RESOURCE_EXHAUSTED, a key with no billing account is
UNAUTHENTICATED, health needs no key, and after SIGTERM the stream's
audio is in the ledger, whether it came through our API or Google's.
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path
from typing import Any

import grpc
from google.cloud.speech_v1 import SpeechAsyncClient
from google.cloud.speech_v1.services.speech.transports import (
    SpeechGrpcAsyncIOTransport,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ch05_protocols.speech.v1.speech_pb2_grpc import SpeechStub
from ch08_metering.database import open_engine
from ch08_metering.ledger import Ledger
from examples.service import Service, running_service
from examples.stream_grpc import Pace, config_request, recognize
from tests.ch04.harness import MANIFEST, reference
from tests.ch05.google_harness import (
    audio_chunks,
    final_transcript,
    requests_for,
    sent,
    streaming_config,
)
from tests.ch05.grpc_harness import (
    finals,
    fixture_audio,
    metadata,
    nothing_yet,
    sent_then_held,
)

TIMEOUT_S = 60.0
GRPC_PORT = re.compile(r"gRPC streaming on grpc://127\.0\.0\.1:(\d+)")
# acme's key, on a tier of one stream at a time
ACCOUNTS = """\
[tiers.single]
max_concurrent_streams = 1
audio_seconds_per_minute = 600

[customers.acme]
tier = "single"
stripe_customer_id = "cus_acme"
key_sha256 = [
  "afacab3575137afa4e00d9cbcafcb14c9ae25f779d964eb0ea5b2c4eb5dfd163",
]
"""


def ledger_totals(database: str) -> dict[tuple[str, str, tuple[str, ...]],
                                         int]:
    """What the ledger holds once the service has gone."""
    engine = open_engine(database)
    try:
        return Ledger(engine).totals()
    finally:
        engine.dispose()


def grpc_port(service: Service) -> int:
    found = GRPC_PORT.search("".join(service.banner))
    assert found is not None, service.banner
    return int(found.group(1))


async def wait_until_serving(channel: grpc.aio.Channel) -> None:
    stub: Any = health_pb2_grpc.HealthStub(channel)
    watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
    async for reply in watch:
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            break
    watch.cancel()


async def test_grpc_streams_are_limited_and_metered(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/ledger.sqlite3"
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    audio = fixture_audio("quick_brown_fox")
    env = {"SPEECH_API_KEYS": "acme-key,no-account-key",
           "DATABASE_URL": database, "CH04_LOAD_S": "0",
           "CH04_WARMUP_S": "0"}
    args = ("-m", "ch08_metering", "serve", "--port", "0", "--stream-port",
            "0", "--grpc-port", "0", "--accounts", str(accounts))
    async with running_service(args, env) as service:
        address = f"127.0.0.1:{grpc_port(service)}"
        async with (grpc.aio.insecure_channel(address) as channel,
                    asyncio.timeout(TIMEOUT_S)):
            await wait_until_serving(channel)  # no key needed
            heard = [r async for r in recognize(
                channel, audio, "acme-key", Pace(realtime=False))]
            sent = asyncio.Event()
            method = SpeechStub(channel).StreamingRecognize
            held = method(sent_then_held([config_request(audio)], sent),
                          metadata=metadata("acme-key"))
            await sent.wait()
            # refused on their metadata: they need not write (and a
            # client still writing may hear INTERNAL instead)
            second = method(nothing_yet(), metadata=metadata("acme-key"))
            over_limit = (await second.code(), await second.details())
            stranger = method(nothing_yet(),
                              metadata=metadata("no-account-key"))
            unknown = await stranger.code()
            held.cancel()
            service.process.send_signal(signal.SIGTERM)
            exit_code = await service.process.wait()
    assert finals(heard) == reference("quick_brown_fox")
    assert over_limit == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                          "tier single: 1 concurrent streams; retry in"
                          " 1.0 s")
    assert unknown == grpc.StatusCode.UNAUTHENTICATED
    assert exit_code == 0
    totals = ledger_totals(database)
    expected = round(MANIFEST.get("quick_brown_fox").duration_s * 1000)
    assert totals.pop(("acme", "compute_ms", ())) > 0
    # Two calls admitted (the recognised one and the held one); the
    # calls refused over the limit or for an unknown key are none.
    assert totals == {("acme", "audio_ms", ()): expected,
                      ("acme", "api_calls", ()): 2}


async def test_google_streams_are_metered_as_ours_are(
        tmp_path: Path) -> None:
    """The official Google client, with its API-key header, on the
    metered port: its audio is in the ledger like any stream's."""
    database = f"sqlite:///{tmp_path}/ledger.sqlite3"
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    env = {"SPEECH_API_KEYS": "acme-key", "DATABASE_URL": database,
           "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}
    args = ("-m", "ch08_metering", "serve", "--port", "0", "--stream-port",
            "0", "--grpc-port", "0", "--accounts", str(accounts))
    requests = requests_for(streaming_config(),
                            audio_chunks("quick_brown_fox"))
    async with running_service(args, env) as service:
        address = f"127.0.0.1:{grpc_port(service)}"
        async with (grpc.aio.insecure_channel(address) as channel,
                    asyncio.timeout(TIMEOUT_S)):
            await wait_until_serving(channel)
            client = SpeechAsyncClient(
                transport=SpeechGrpcAsyncIOTransport(channel=channel))
            stream = await client.streaming_recognize(
                requests=sent(requests), retry=None, timeout=TIMEOUT_S,
                metadata=(("x-goog-api-key", "acme-key"),))
            heard = final_transcript([r async for r in stream])
            service.process.send_signal(signal.SIGTERM)
            exit_code = await service.process.wait()
    assert heard == reference("quick_brown_fox")
    assert exit_code == 0
    totals = ledger_totals(database)
    expected = round(MANIFEST.get("quick_brown_fox").duration_s * 1000)
    assert totals.pop(("acme", "compute_ms", ())) > 0
    assert totals == {("acme", "audio_ms", ()): expected,
                      ("acme", "api_calls", ()): 1}

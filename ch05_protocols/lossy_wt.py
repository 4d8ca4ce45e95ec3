"""The lossy-link lab's WebTransport transports: datagrams and a stream.

Chapter 5, "WebTransport: QUIC datagrams, head-of-line blocking". One
service (`python -m ch05_protocols wt`, the mock at model time zero, as
for the TCP transports), two ways to send it audio: each 20 ms frame a
QUIC datagram, never sent again when lost (the server waits three
frames for a missing one, then puts silence in its place, so the words
after it keep their times), or every frame on one QUIC stream, which
QUIC delivers in order and whole, as TCP does. The client pins the
server's certificate by the hash the service prints. The service
speaks Deepgram's dialect (`--dialect deepgram`), whose `Results` say
what stream time they cover (`start` + `duration`), which OpenAI's
realtime events do not; its last message says how many frames it heard
and how many it dropped, from which the audio received is counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
)
from dataclasses import dataclass, field

from ch05_protocols.compare import KEY
from ch05_protocols.lossy_stream import (
    CONNECT_TIMEOUT_S,
    Event,
    deepgram_covered,
    service_env,
)
from ch05_protocols.lossy_stream import Received as AudioReceived
from ch05_protocols.service_process import running
from ch05_protocols.wt_client import (
    RATE,
    SessionRefusedError,
    WebTransportClient,
    open_session,
)
from ch05_protocols.wt_frames import FRAME_MS

HASH_LINE = "certificate sha256 (hex): "
RETRY_S = 0.2  # a session refused while the model loads (503)


def heard_s(message: dict[str, object]) -> float | None:
    """Audio the server heard, from its last message's report."""
    if message.get("type") != "webtransport.closed":
        return None
    report = message["audio"]
    assert isinstance(report, dict)
    frames = int(report["frames"]) - int(report["dropped_frames"])
    return round(frames * FRAME_MS / 1000, 3)


@dataclass
class SessionStream:
    client: WebTransportClient
    exit_stack: AsyncExitStack

    async def send(self, chunk: bytes) -> None:
        self.client.send_audio(chunk)

    async def finish(self) -> None:
        self.client.finish()

    async def events(self) -> AsyncIterator[Event]:
        async for received in self.client.events():
            if found := deepgram_covered(received.message):
                yield found
            elif (audio_s := heard_s(received.message)) is not None:
                yield AudioReceived(audio_s)

    async def close(self) -> None:
        await self.exit_stack.aclose()


@dataclass
class WebTransportTransport:
    mode: str  # datagram or stream
    key: str = KEY
    rate: int = RATE
    pin: bytes = field(default=b"", init=False)  # the served certificate

    @property
    def name(self) -> str:
        return f"wt_{self.mode}s"

    def serve(self) -> AbstractAsyncContextManager[int]:
        return self.service()

    @asynccontextmanager
    async def service(self) -> AsyncIterator[int]:
        args = ["wt", "--port", "0", "--dialect", "deepgram"]
        async with running(args, service_env()) as served:
            self.pin = next(bytes.fromhex(line.removeprefix(HASH_LINE))
                            for line in served.printed
                            if line.startswith(HASH_LINE))
            yield served.port

    async def connect(self, port: int) -> SessionStream:
        url = f"https://127.0.0.1:{port}/v1/realtime"
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            while True:
                stack = AsyncExitStack()
                try:
                    client = await stack.enter_async_context(open_session(
                        url, self.pin, self.mode, self.key,
                        timeout_s=CONNECT_TIMEOUT_S))
                except SessionRefusedError as refused:
                    await stack.aclose()
                    if refused.status != 503:
                        raise
                    await asyncio.sleep(RETRY_S)  # told to retry
                    continue
                return SessionStream(client, stack)

"""The official Deepgram SDK against a server of this repository.

`environment` points the SDK at a server's HTTP and WebSocket bases;
`exchange` sends a stream's chunks and then `CloseStream` while reading
every message back, and returns the `Results` and `Metadata` heard.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results


class Connection(Protocol):
    """What `exchange` needs of the SDK's live connection."""

    async def send_media(self, message: bytes) -> None: ...

    async def send_close_stream(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[object]: ...


@dataclass
class Heard:
    results: list[ListenV1Results] = field(default_factory=list)
    metadata: list[ListenV1Metadata] = field(default_factory=list)

    @property
    def transcript(self) -> str:
        """The finals' text, as one line."""
        said = [r.channel.alternatives[0].transcript for r in self.results
                if r.is_final]
        return " ".join(text for text in said if text)


def environment(http: str, ws: str) -> DeepgramClientEnvironment:
    return DeepgramClientEnvironment(base=http, production=ws, agent=ws,
                                     agent_rest=http)


async def exchange(connection: Connection, chunks: Iterable[bytes],
                   timeout_s: float = 30.0) -> Heard:
    heard = Heard()

    async def send() -> None:
        for chunk in chunks:
            await connection.send_media(chunk)
        await connection.send_close_stream()

    sender = asyncio.create_task(send())
    async with asyncio.timeout(timeout_s):
        async for message in connection:
            if isinstance(message, ListenV1Results):
                heard.results.append(message)
            elif isinstance(message, ListenV1Metadata):
                heard.metadata.append(message)
    await sender
    return heard

"""An engine a test steers, and the service on a real socket.

`SteeredRecognizer` implements chapter 4's `Recognizer`: it hears one
word per final, and a test decides when it is ready, when its decodes
may finish (a gate), and which final fails. `live_server` runs the app
under uvicorn on a free port in the test's own event loop, for what
crosses a socket: disconnects, keep-alives arriving over time.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI

from ch04_streaming.engine import DecodeRequest, UtteranceDecoder
from ch04_streaming.transcript import Hypothesis, Word
from ch07_api.__main__ import Server

STARTED_WITHIN_S = 10.0


class EngineFaultError(RuntimeError):
    """What the steered engine raises on the final it is told to fail."""


@dataclass
class SteeredRecognizer:
    ready: bool = True
    gate: asyncio.Event | None = None  # decodes wait for it when set
    fail_final: int | None = None  # this final (from 1) raises
    finals: int = 0
    decodes: int = 0
    waiting: int = 0
    decoding: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return UtteranceDecoder(start_s)

    async def decode(self, batch: Sequence[DecodeRequest]
                     ) -> list[Hypothesis]:
        self.decodes += 1
        self.decoding.set()
        if self.gate is not None:
            self.waiting += 1
            try:
                await self.gate.wait()
            finally:
                self.waiting -= 1
        answers = []
        for request in batch:
            request.decoder.fed_samples += request.audio.size
            words: tuple[Word, ...] = ()
            if request.final:
                self.finals += 1
                if self.finals == self.fail_final:
                    raise EngineFaultError("the engine failed on cue")
                start = request.decoder.start_s
                words = (Word(f"word{self.finals}", start, start + 0.2),)
            answers.append(Hypothesis(words, request.final))
        return answers


@asynccontextmanager
async def live_server(app: FastAPI) -> AsyncIterator[int]:
    """Serve `app` on a free port of 127.0.0.1; yield the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = Server(uvicorn.Config(app, log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(STARTED_WITHIN_S):
            while not server.started:
                await asyncio.sleep(0.01)
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        await serving
        listener.close()

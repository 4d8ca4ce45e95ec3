"""Chapter 12's fleet in a lab, and a stream to it, as its tour, lab
and tests drive them.

Chapter 12. `running_fleet` starts `python -m ch12_scaling serve` in a
fresh lab directory and waits until every replica it asked for is warm
(each replica's own pipeline answers `/readyz`). A stream is a
Deepgram-dialect stream of 16 kHz PCM through the Serve proxy (or
straight to a pipeline): a fixture sent paced as a microphone, the
finals collected until the server closes, and which replica, in which
region, took it, from the answer's `x-replica` and `x-region` headers.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from ch04_streaming.client import load_audio
from examples.fixtures import AUDIO_DIR
from examples.service import Service, running_service, wait_until_ready

LISTEN = "/v1/listen?encoding=linear16&sample_rate=16000"
CHUNK = 3200  # 100 ms of 16 kHz PCM
CLOSE_STREAM = json.dumps({"type": "CloseStream"})
START_S = 120.0  # Ray, Serve's proxy and the replicas
STOP_S = 90.0  # replicas drain, then Ray stops


@dataclass(frozen=True)
class Fleet:
    service: Service  # python -m ch12_scaling serve
    lab: Path  # the replicas' records, and where notices go

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.service.port}"

    def records(self) -> dict[str, dict[str, Any]]:
        """Each replica's record, by replica."""
        return {path.stem: json.loads(path.read_text())
                for path in self.lab.glob("*.json")}


@asynccontextmanager
async def running_fleet(*flags: str, replicas: int,
                        env: Mapping[str, str] | None = None
                        ) -> AsyncIterator[Fleet]:
    """`serve` with `flags`, once `replicas` replicas are warm."""
    with tempfile.TemporaryDirectory(prefix="ch12-lab-") as lab:
        args = ("-m", "ch12_scaling", "serve", "--port", "0",
                "--lab-dir", lab, *flags)
        async with running_service(args, env, start_timeout_s=START_S,
                                   stop_timeout_s=STOP_S) as service:
            fleet = Fleet(service, Path(lab))
            async with asyncio.timeout(START_S):
                while len(fleet.records()) < replicas:
                    await asyncio.sleep(0.2)
            for record in fleet.records().values():
                await wait_until_ready(record["pipeline_port"], START_S)
            yield fleet


def open_stream(url: str, key: str) -> connect:
    """`async with open_stream(url, key) as socket:`, or awaited."""
    return connect(f"{url}{LISTEN}&interim_results=false",
                   additional_headers={"Authorization": f"Token {key}"})


async def send_paced(socket: ClientConnection, fixture: str) -> None:
    payload = load_audio(AUDIO_DIR / f"{fixture}.wav").payload
    for start in range(0, len(payload), CHUNK):
        await socket.send(payload[start:start + CHUNK])
        await asyncio.sleep(0.1)  # a microphone has it once it is over
    await socket.send(CLOSE_STREAM)


async def finals_until_close(socket: ClientConnection) -> list[str]:
    said = []
    async for raw in socket:
        message = json.loads(raw)
        if message.get("type") == "Results" and message["is_final"]:
            text = message["channel"]["alternatives"][0]["transcript"]
            if text:
                said.append(text)
    return said


def replica_of(socket: ClientConnection) -> str:
    assert socket.response is not None
    return socket.response.headers["x-replica"]


def region_of(socket: ClientConnection) -> str:
    assert socket.response is not None
    return socket.response.headers["x-region"]

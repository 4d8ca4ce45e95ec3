"""Stream a WAV file with OpenAI's own SDK to our realtime dialect.

    python -m ch05_protocols ws &          # serves /v1/realtime on 8005
    python -m examples.realtime_sdk examples/audio/support_call.wav \\
        [--url http://127.0.0.1:8005/v1] [--realtime]

Chapter 5, "WebSocket for audio". The unmodified `openai` SDK opens a
transcription session (`intent=transcription`), sends the audio as
OpenAI asks, base64 PCM16 at 24 kHz in `input_audio_buffer.append`
events, and prints each completed transcript with the time from the
end of its speech. The file is resampled to 24 kHz with soxr first.
The key comes from `--key` or the first of `SPEECH_API_KEYS`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types import realtime as events
from openai.types.realtime import (
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    RealtimeErrorEvent,
    RealtimeServerEvent,
    RealtimeTranscriptionSessionCreateRequestParam,
    SessionUpdatedEvent,
)

from ch04_streaming.client import load_pcm

RATE = 24_000  # OpenAI's rate for audio/pcm
CHUNK_MS = 100


def pcm24k(path: Path) -> bytes:
    """A sound file as OpenAI takes it: mono PCM16 at 24 kHz."""
    return load_pcm(path, RATE)


SESSION: RealtimeTranscriptionSessionCreateRequestParam = {
    "type": "transcription",
    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24_000}}},
}
TranscriptionDelta = events.ConversationItemInputAudioTranscriptionDeltaEvent
TranscriptionCompleted = (
    events.ConversationItemInputAudioTranscriptionCompletedEvent)


@dataclass
class Heard:
    transcripts: list[str] = field(default_factory=list)
    deltas: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)
    seconds: float = 0.0  # the audio the server says it transcribed
    latencies_ms: list[float] = field(default_factory=list)
    started: set[str] = field(default_factory=set)  # item ids
    done: set[str] = field(default_factory=set)
    answered: int = 0  # session.update events answered
    ends_s: dict[str, float] = field(default_factory=dict)

    def take(self, event: RealtimeServerEvent, elapsed_s: float) -> None:
        """One server event, `elapsed_s` after the audio began."""
        if isinstance(event, SessionUpdatedEvent):
            self.answered += 1
        elif isinstance(event, InputAudioBufferSpeechStartedEvent):
            self.started.add(event.item_id)
        elif isinstance(event, InputAudioBufferSpeechStoppedEvent):
            self.ends_s[event.item_id] = event.audio_end_ms / 1000
        elif isinstance(event, TranscriptionDelta):
            self.deltas += 1
        elif isinstance(event, TranscriptionCompleted):
            self.done.add(event.item_id)
            if event.transcript:  # a commit of silence says nothing
                self.transcripts.append(event.transcript)
            self.seconds += getattr(event.usage, "seconds", 0.0)
            if event.item_id in self.ends_s:
                end_s = self.ends_s[event.item_id]
                self.latencies_ms.append((elapsed_s - end_s) * 1000)
        elif isinstance(event, RealtimeErrorEvent):
            self.errors.append(event.error.model_dump())


# --8<-- [start:realtime_event_loop]
async def transcribe(base_url: str, key: str, pcm: bytes,
                     realtime: bool = False) -> Heard:
    client = AsyncOpenAI(api_key=key, base_url=base_url)
    heard = Heard()
    async with client.realtime.connect(
            extra_query={"intent": "transcription"}) as connection:
        await connection.session.update(session=SESSION)
        t0 = time.monotonic()
        sending = asyncio.create_task(send(connection, pcm, t0, realtime))
        async for event in connection:  # read while sending
            heard.take(event, time.monotonic() - t0)
            if heard.answered == 2 and heard.started <= heard.done:
                break
        await sending
    return heard


async def send(connection: AsyncRealtimeConnection, pcm: bytes,
               t0: float, realtime: bool) -> None:
    step = RATE * 2 * CHUNK_MS // 1000
    for offset in range(0, len(pcm), step):
        if realtime:  # a microphone sends audio once it is spoken
            spoken = t0 + (offset + step) / (2 * RATE)
            await asyncio.sleep(max(0.0, spoken - time.monotonic()))
        chunk = base64.b64encode(pcm[offset:offset + step]).decode()
        await connection.input_audio_buffer.append(audio=chunk)
    await connection.input_audio_buffer.commit()
    # Events are answered in order: once this second update is, every
    # utterance the audio started has been announced.
    await connection.session.update(session=SESSION)
# --8<-- [end:realtime_event_loop]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.realtime_sdk")
    parser.add_argument("file", type=Path)
    parser.add_argument("--url", default="http://127.0.0.1:8005/v1",
                        help="the API's base URL, as the SDK takes it")
    parser.add_argument("--realtime", action="store_true",
                        help="send at the pace of speech")
    parser.add_argument("--key", default=None)
    args = parser.parse_args(argv)
    key = args.key or os.environ.get("SPEECH_API_KEYS", "").split(",")[0]
    if not key.strip():
        parser.error("give --key or set SPEECH_API_KEYS")
    heard = asyncio.run(transcribe(args.url, key.strip(), pcm24k(args.file),
                                   args.realtime))
    for text in heard.transcripts:
        print(text)
    if args.realtime and heard.latencies_ms:
        worst = max(heard.latencies_ms)
        print(f"slowest final: {worst:.0f} ms after the end of its speech")
    print(f"{len(heard.transcripts)} items, {heard.deltas} deltas,"
          f" {heard.seconds:.2f} s of audio transcribed")
    for error in heard.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if heard.errors else 0


if __name__ == "__main__":
    sys.exit(main())

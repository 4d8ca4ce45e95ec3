"""Stream an audio file to the chapter 5 gRPC service; print results.

    python -m examples.stream_grpc examples/audio/support_call.wav \\
        [--url 127.0.0.1:50005] [--key KEY] [--deadline S] [--fast] \\
        [--chunk-ms 100]

The first request carries the config, then the audio follows in 100 ms
chunks at real-time pace (`--fast`: as fast as gRPC takes it). Interim
text overwrites one line with its stability; each final gets a line of
its own with its times and confidence, then the billed duration. With
`--deadline`, the call carries a deadline of S seconds: past it the
server stops decoding and the call ends DEADLINE_EXCEEDED. The key
comes from `--key` or the first of `SPEECH_API_KEYS`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from ch04_streaming.auth import split_keys
from ch04_streaming.client import ClientAudio, load_audio
from ch05_protocols.speech.v1.speech_pb2 import (
    SPEECH_ACTIVITY_BEGIN,
    SPEECH_ACTIVITY_END,
    RecognitionConfig,
    StreamingConfig,
    StreamingRecognizeRequest,
    StreamingRecognizeResponse,
)
from ch05_protocols.speech.v1.speech_pb2_grpc import SpeechStub

ENCODINGS = {"linear16": RecognitionConfig.LINEAR16,
             "mulaw": RecognitionConfig.MULAW}


@dataclass(frozen=True)
class Pace:
    chunk_ms: int = 100
    realtime: bool = True  # a chunk leaves once it would be captured


def config_request(audio: ClientAudio, interim_results: bool = True,
                   vad_events: bool = False) -> StreamingRecognizeRequest:
    return StreamingRecognizeRequest(streaming_config=StreamingConfig(
        config=RecognitionConfig(encoding=ENCODINGS[audio.encoding],
                                 sample_rate_hertz=audio.sample_rate,
                                 language_code="en-US"),
        interim_results=interim_results,
        enable_voice_activity_events=vad_events))


async def requests(audio: ClientAudio, pace: Pace,
                   interim_results: bool = True, vad_events: bool = False,
                   ) -> AsyncIterator[StreamingRecognizeRequest]:
    """The config, then the audio in chunks, paced as asked."""
    yield config_request(audio, interim_results, vad_events)
    step = audio.bytes_per_second * pace.chunk_ms // 1000
    loop = asyncio.get_running_loop()
    started = loop.time()
    for offset in range(0, len(audio.payload), step):
        chunk = audio.payload[offset:offset + step]
        if pace.realtime:  # wait until the chunk has been "spoken"
            spoken = (offset + len(chunk)) / audio.bytes_per_second
            await asyncio.sleep(max(0.0, started + spoken - loop.time()))
        yield StreamingRecognizeRequest(audio_content=chunk)


async def recognize(
    channel: grpc.aio.Channel, audio: ClientAudio, key: str,
    pace: Pace = Pace(), deadline_s: float | None = None,
    interim_results: bool = True, vad_events: bool = False,
) -> AsyncIterator[StreamingRecognizeResponse]:
    """Every response of one stream; grpc.aio.AioRpcError if it fails."""
    stub = SpeechStub(channel)
    call = stub.StreamingRecognize(
        requests(audio, pace, interim_results, vad_events),
        metadata=(("authorization", f"Bearer {key}"),),
        timeout=deadline_s)
    async for response in call:
        yield response


def show(response: StreamingRecognizeResponse) -> None:
    for result in response.results:
        text = result.alternatives[0].transcript
        if not result.is_final:
            print(f"\r\033[K{text}  (stability {result.stability:.2f})",
                  end="", flush=True)
            continue
        start = result.result_start_time.ToTimedelta().total_seconds()
        end = result.result_end_time.ToTimedelta().total_seconds()
        confidence = result.alternatives[0].confidence
        print(f"\r\033[K[{start:6.2f}-{end:6.2f} s] {text}"
              f"  (confidence {confidence:.2f})", flush=True)
    event = response.speech_event_type
    if event in (SPEECH_ACTIVITY_BEGIN, SPEECH_ACTIVITY_END):
        at = response.speech_event_time.ToTimedelta().total_seconds()
        name = "speech begins" if event == SPEECH_ACTIVITY_BEGIN else "ends"
        print(f"\r\033[K-- {name} at {at:.2f} s", flush=True)
    if response.HasField("total_billed_time"):
        billed = response.total_billed_time.ToTimedelta().total_seconds()
        print(f"billed: {billed:g} s", flush=True)


async def run(args: argparse.Namespace) -> int:
    key = args.key or next(
        iter(split_keys(os.environ.get("SPEECH_API_KEYS", ""))), "")
    if not key:
        print("no key: pass --key or set SPEECH_API_KEYS", file=sys.stderr)
        return 2
    audio = load_audio(args.file)
    pace = Pace(args.chunk_ms, realtime=not args.fast)
    async with grpc.aio.insecure_channel(args.url) as channel:
        try:
            async for response in recognize(channel, audio, key, pace,
                                            args.deadline,
                                            vad_events=args.vad_events):
                show(response)
        except grpc.aio.AioRpcError as error:
            print(f"\n{error.code().name}: {error.details()}",
                  file=sys.stderr)
            return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.stream_grpc",
        description="Stream a WAV file to the gRPC speech service.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--url", default="127.0.0.1:50005",
                        help="host:port (default %(default)s)")
    parser.add_argument("--key", help="API key (default: the first of "
                        "SPEECH_API_KEYS)")
    parser.add_argument("--deadline", type=float, metavar="S",
                        help="the call's deadline, in seconds")
    parser.add_argument("--fast", action="store_true",
                        help="send as fast as possible, not in real time")
    parser.add_argument("--chunk-ms", type=int, default=100)
    parser.add_argument("--vad-events", action="store_true",
                        help="ask for speech begin and end events")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

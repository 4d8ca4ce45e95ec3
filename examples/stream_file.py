"""Stream an audio file to the chapter 4 service and print transcripts.

    python -m examples.stream_file examples/audio/support_call.wav \\
        [--dialect deepgram|assemblyai] [--chunk-ms 100] [--realtime]

Interim text overwrites one line; each final gets a line of its own with
its latency: the time from sending the audio that ends it to receiving
it. The key comes from `--key` or the first of `SPEECH_API_KEYS`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ch04_streaming.client import DIALECTS, Result, load_audio, stream


def print_result(result: Result) -> None:
    if result.is_final:
        if result.text:
            line = f"{result.text}  [{result.latency_s * 1000:.0f} ms]"
            print(f"\r\033[K{line}", flush=True)
    else:
        print(f"\r\033[K{result.text}", end="", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.stream_file")
    parser.add_argument("file", type=Path)
    parser.add_argument("--dialect", choices=sorted(DIALECTS),
                        default="deepgram")
    parser.add_argument("--chunk-ms", type=int, default=100,
                        help="audio per message, 20 to 250 ms")
    parser.add_argument("--realtime", action="store_true",
                        help="send at the pace of speech")
    parser.add_argument("--url", default="ws://127.0.0.1:8004")
    parser.add_argument("--key", default=None)
    args = parser.parse_args(argv)
    if not 20 <= args.chunk_ms <= 250:
        parser.error("--chunk-ms must be from 20 to 250")
    keys = os.environ.get("SPEECH_API_KEYS", "")
    key = args.key or keys.split(",")[0].strip()
    if not key:
        parser.error("give --key or set SPEECH_API_KEYS")
    report = asyncio.run(stream(
        args.url, DIALECTS[args.dialect], key, load_audio(args.file),
        chunk_ms=args.chunk_ms, realtime=args.realtime,
        on_result=print_result,
    ))
    print(f"\r\033[Kclosed {report.close_code} {report.close_reason}".rstrip())
    return 0 if report.close_code in (1000, None) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Stream a WAV file over the base64 WebSocket framing (chapter 5).

    python -m ch05_protocols ws &          # serves /ws/base64 on 8005
    python -m examples.stream_base64 examples/audio/support_call.wav \\
        [--binary] [--realtime] [--backpressure drop]

Each chunk goes as `{"type": "audio", "data": "<base64>"}` in a text
frame (with `--binary`, as a binary frame to `/ws/binary` instead);
finals are printed with their latency, then the bytes sent, which is
where the two framings differ. The key comes from `--key` or the first
of `SPEECH_API_KEYS`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ch04_streaming.client import load_audio, stream
from ch05_protocols.ws_client import base64_client, base64_frame, binary_client
from examples.stream_file import print_result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.stream_base64")
    parser.add_argument("file", type=Path)
    parser.add_argument("--binary", action="store_true",
                        help="binary frames to /ws/binary, to compare")
    parser.add_argument("--chunk-ms", type=int, default=100)
    parser.add_argument("--realtime", action="store_true",
                        help="send at the pace of speech")
    parser.add_argument("--backpressure", choices=("buffer", "drop"),
                        default="buffer")
    parser.add_argument("--url", default="ws://127.0.0.1:8005")
    parser.add_argument("--key", default=None)
    args = parser.parse_args(argv)
    if not 20 <= args.chunk_ms <= 1000:
        parser.error("--chunk-ms must be from 20 to 1000")
    key = args.key or os.environ.get("SPEECH_API_KEYS", "").split(",")[0]
    if not key.strip():
        parser.error("give --key or set SPEECH_API_KEYS")
    options = {"backpressure": args.backpressure}
    dialect = binary_client(**options) if args.binary else (
        base64_client(**options))
    report = asyncio.run(stream(
        args.url, dialect, key.strip(), load_audio(args.file),
        chunk_ms=args.chunk_ms, realtime=args.realtime,
        on_result=print_result,
        frame_audio=bytes if args.binary else base64_frame))
    print(f"\r\033[Ksent {report.bytes_sent:,} bytes in"
          f" {report.chunks_sent} messages; closed {report.close_code}"
          f" {report.close_reason}".rstrip())
    return 0 if report.close_code in (1000, None) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Stream an audio file to the chapter 4 service and print transcripts.

    python -m examples.stream_file examples/audio/support_call.wav \\
        [--dialect deepgram|assemblyai] [--chunk-ms 100] [--realtime] \\
        [--query NAME=VALUE ...] [--records FILE]

Interim text overwrites one line; each final gets a line of its own with
its latency: the time from the end of its audio to receiving it, where
the audio ends when it was spoken (`--realtime`, as from a microphone)
or, sent as fast as possible, when it was sent. The key comes from
`--key` or the first of `SPEECH_API_KEYS`; `--query` adds parameters to
the stream's query (chapter 9's `retain=true`). With `--records`, the
per-utterance SLI records of chapter 11 are written to FILE (JSONL) for
`python -m ch11_slo report FILE`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from ch04_streaming.client import (
    DIALECTS,
    ClientAudio,
    ClientDialect,
    Heard,
    Report,
    Result,
    load_audio,
    stream,
)
from ch11_slo.records import Record, write_records
from examples.fixtures import AudioFixture, load_manifest
from examples.sli_records import stream_record, utterance_records


class WithQuery:
    """A client dialect whose query carries more parameters."""

    def __init__(self, inner: ClientDialect,
                 extra: Mapping[str, str]) -> None:
        self.inner, self.extra = inner, dict(extra)
        self.path, self.close_message = inner.path, inner.close_message
        self.min_chunk_ms = inner.min_chunk_ms

    def query(self, audio: ClientAudio) -> dict[str, str]:
        return {**self.inner.query(audio), **self.extra}

    def headers(self, key: str) -> dict[str, str]:
        return self.inner.headers(key)

    def heard(self, message: Mapping[str, object]) -> Heard | None:
        return self.inner.heard(message)


def query_parameter(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not name or not equals:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=VALUE, such as retain=true")
    return name, value


def print_result(result: Result) -> None:
    if result.is_final:
        if result.text:
            line = f"{result.text}  [{result.latency_s * 1000:.0f} ms]"
            print(f"\r\033[K{line}", flush=True)
    else:
        print(f"\r\033[K{result.text}", end="", flush=True)


def write_sli_records(path: Path, audio: Path, dialect: str,
                      report: Report, started: datetime) -> None:
    stream_id = f"{dialect}-{uuid.uuid4().hex[:12]}"
    records: list[Record] = [
        stream_record(report, stream_id, started, datetime.now(UTC))]
    fixture = fixture_for(audio)
    if fixture is None:
        print(f"{audio.name} is not a fixture: no reference text, so only"
              " the stream record is written", file=sys.stderr)
    else:
        records += utterance_records(report, fixture, stream_id, dialect)
    write_records(path, records)
    print(f"wrote {len(records)} records to {path}")


def fixture_for(audio: Path) -> AudioFixture | None:
    for fixture in load_manifest().fixtures:
        if fixture.file().resolve() == audio.resolve():
            return fixture
    return None


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
    parser.add_argument("--query", type=query_parameter, action="append",
                        default=[], metavar="NAME=VALUE",
                        help="another query parameter; repeat for more")
    parser.add_argument("--records", type=Path, default=None,
                        help="write SLI records (JSONL) here")
    args = parser.parse_args(argv)
    if not 20 <= args.chunk_ms <= 250:
        parser.error("--chunk-ms must be from 20 to 250")
    keys = os.environ.get("SPEECH_API_KEYS", "")
    key = args.key or keys.split(",")[0].strip()
    if not key:
        parser.error("give --key or set SPEECH_API_KEYS")
    started = datetime.now(UTC)
    dialect = WithQuery(DIALECTS[args.dialect], dict(args.query))
    report = asyncio.run(stream(
        args.url, dialect, key, load_audio(args.file),
        chunk_ms=args.chunk_ms, realtime=args.realtime,
        on_result=print_result,
    ))
    print(f"\r\033[Kclosed {report.close_code} {report.close_reason}".rstrip())
    if args.records is not None:
        write_sli_records(args.records, args.file, args.dialect, report,
                          started)
    return 0 if report.close_code in (1000, None) else 1


if __name__ == "__main__":
    sys.exit(main())

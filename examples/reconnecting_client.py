"""A streaming client that comes back after its connection drops.

Chapter 11, "Reliability: connection drops and reconnection": the
reconnection SLI counts the drops a client recovered from, and this
client gives it real data. It streams a file to the chapter 4 service;
when the connection drops abnormally (a close code other than 1000 or
1001, or a reset with no close frame) it connects again after a bounded
exponential backoff with jitter, and resumes at the end of the last
final it received, so every utterance of the file is finalised once.
It writes chapter 11's records: a stream record per connection,
`reconnected` when the client came back after it, and the utterance
records of the whole file, timed in the file's own time.

    python -m examples.reconnecting_client FILE --url ws://HOST:PORT \\
        --key KEY [--dialect deepgram|assemblyai] [--realtime] \\
        [--max-attempts 6] [--records build/records.jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidMessage,
    InvalidStatus,
)

from ch04_streaming.client import (
    DIALECTS,
    AudioClock,
    ClientAudio,
    ClientDialect,
    Heard,
    Report,
    Result,
    ResultTimer,
    chunk_bounds,
    frame_header_bytes,
    load_audio,
)
from ch04_streaming.metrics import ORDERLY_CLOSES
from ch11_slo.records import Record, StreamRecord, write_records
from examples.fixtures import AudioFixture
from examples.sli_records import utterance_records
from examples.stream_file import fixture_for, print_result

ABNORMAL_CLOSURE = 1006  # what a socket reports when no close frame came


@dataclass(frozen=True)
class Backoff:
    """How long to wait before each try, and how many tries to make.

    Full jitter: try n (from 0) waits a uniform draw from 0 to
    min(`cap_s`, `base_s` x 2^n), so clients that lost the same server
    at the same moment do not all come back at the same moment. Tries
    count from the last new final: a connect that fails is one, and so
    is a connection that drops again before a new final, so a service
    that accepts and drops every connection costs at most
    `max_attempts` connections per final. After `max_attempts` tries
    without a new final the client gives up.
    """

    base_s: float = 0.25
    cap_s: float = 8.0
    max_attempts: int = 6

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2**attempt))


@dataclass(frozen=True)
class Connection:
    """One WebSocket connection of a reconnecting stream."""

    resume_s: float  # where in the file its audio began
    started: datetime
    ended: datetime
    close_code: int
    close_reason: str
    sent_all: bool = True  # its close message went before it closed

    @property
    def dropped(self) -> bool:
        return is_drop(self.close_code)

    @property
    def unfinished(self) -> bool:
        """Dropped, or closed in order before the file was all sent:
        a draining server's 1001 (chapter 12) asks the client to go on
        elsewhere, and the rest of the file still has to be heard."""
        return self.dropped or not self.sent_all


@dataclass
class Reconnection:
    """The whole file's results in the file's time, and its connections.

    `report` gathers every connection's results, each shifted by where
    its connection resumed; `gave_up` says the last drop was not
    recovered from, so the audio after it was never heard.
    """

    report: Report
    connections: list[Connection] = field(default_factory=list)
    gave_up: bool = False


def is_drop(close_code: int) -> bool:
    """Anything but a normal close or going away, as chapter 11 counts."""
    return close_code not in ORDERLY_CLOSES


class ResumedDialect:
    """A dialect whose word times count from the file's start: the
    service times words from the start of what its connection was sent,
    which began `resume_s` into the file."""

    def __init__(self, dialect: ClientDialect, resume_s: float) -> None:
        self.dialect = dialect
        self.resume_s = resume_s
        self.path = dialect.path
        self.close_message = dialect.close_message
        self.min_chunk_ms = dialect.min_chunk_ms

    def query(self, audio: ClientAudio) -> dict[str, str]:
        return self.dialect.query(audio)

    def headers(self, key: str) -> dict[str, str]:
        return self.dialect.headers(key)

    def heard(self, message: Mapping[str, object]) -> Heard | None:
        heard = self.dialect.heard(message)
        if heard is None:
            return None
        # `segment` keys one connection's results only: left as it is.
        return Heard(heard.text, heard.is_final,
                     self.shifted(heard.first_word_s),
                     self.shifted(heard.last_word_s), heard.segment)

    def shifted(self, stream_s: float | None) -> float | None:
        return None if stream_s is None else stream_s + self.resume_s


def resume_point(report: Report, resumed_s: float) -> float:
    """Where the next connection starts: the end of the last final's
    last word, in the file's time. The open utterance, whose interims
    died with the connection, is sent again whole; a final already
    received is never asked for twice."""
    if not report.utterances:
        return resumed_s
    return max(resumed_s, report.utterances[-1].last_word_s)


def resume_byte(audio: ClientAudio, resume_s: float) -> int:
    """The first byte to send again, on a sample boundary."""
    width = 2 if audio.encoding == "linear16" else 1
    at = min(int(resume_s * audio.bytes_per_second), len(audio.payload))
    return at - at % width


def forget_resent(clock: AudioClock, resume_s: float) -> None:
    """Audio sent again is dated by its new sending: keep the chunks
    that hold audio from before `resume_s`, forget the rest."""
    before = (bisect_left(clock.audio_ends, resume_s - 1e-6) + 1
              if resume_s > 1e-6 else 0)
    del clock.audio_ends[before:], clock.sent_at[before:]


# Refused, reset, timed out, broken off during the handshake, or an
# HTTP status: worth another try unless the status says otherwise.
RETRYABLE = (OSError, TimeoutError, InvalidMessage, InvalidStatus)


def worth_retrying(error: Exception) -> bool:
    """A refused or broken connection may heal, and so may a server
    error (a 503 while the service drains); a 401 will not."""
    if isinstance(error, InvalidStatus):
        return error.response.status_code >= 500
    return True


@dataclass
class ReconnectingClient:
    """Streams `audio` over as many connections as it takes.

    Each connection sends the file from its resume point: the end of
    the last word of the last final received. Resuming there, rather
    than where the dropped connection had got to, costs the audio of
    the open utterance, sent twice; in return nothing is lost (audio
    the service had but never finalised died with its connection) and
    nothing is counted twice (a final received stays the only one of
    its words). Paced (`realtime`), the file stands for a microphone
    that kept capturing through the outage: the audio held meanwhile
    goes at once, then at the pace of speech, and latency counts from
    when a word was spoken, the outage included. Unpaced, audio sent
    again is timed from when it was sent again.
    """

    url: str
    dialect: ClientDialect
    key: str
    audio: ClientAudio
    chunk_ms: int = 100
    realtime: bool = False
    backoff: Backoff = field(default_factory=Backoff)
    rng: random.Random = field(default_factory=random.Random)
    on_result: Callable[[Result], None] | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    # --8<-- [start:reconnect_resume]
    async def run(self) -> Reconnection:
        """Stream the file to its end, or until the tries run out."""
        run = Reconnection(Report(audio_clock=AudioClock(self.realtime)))
        run.report.audio_clock.origin = self.clock()  # capture begins
        resume_s, tries = 0.0, 0
        connection = await self.connection(run, resume_s)
        while connection is None or connection.unfinished:
            if connection is not None:  # dropped: resume at the last final
                heard_to = resume_point(run.report, resume_s)
                if heard_to > resume_s:  # a new final: a fresh budget
                    tries = 0
                resume_s = heard_to
            if tries == self.backoff.max_attempts:
                run.gave_up = True
                break
            await self.sleep(self.backoff.delay(tries, self.rng))
            tries += 1
            connection = await self.connection(run, resume_s)
        return run
    # --8<-- [end:reconnect_resume]

    async def connection(self, run: Reconnection,
                         resume_s: float) -> Connection | None:
        """One connection, from `resume_s` to its close; None when it
        could not be opened. The first one must open: a stream that
        never started has no drop to recover from."""
        start = resume_byte(self.audio, resume_s)
        resume_s = start / self.audio.bytes_per_second
        dialect = ResumedDialect(self.dialect, resume_s)
        query = urlencode(dialect.query(self.audio))
        started = datetime.now(UTC)
        try:
            socket = await connect(
                f"{self.url}{dialect.path}?{query}", max_size=2**22,
                additional_headers=dialect.headers(self.key))
        except RETRYABLE as error:
            if not run.connections or not worth_retrying(error):
                raise
            return None
        forget_resent(run.report.audio_clock, resume_s)
        async with socket:
            sent_all = await self.exchange(socket, run.report, dialect,
                                           start)
        connection = Connection(
            resume_s, started, datetime.now(UTC),
            socket.close_code or ABNORMAL_CLOSURE, socket.close_reason or "",
            sent_all)
        run.connections.append(connection)
        run.report.close_code = connection.close_code
        run.report.close_reason = connection.close_reason
        return connection

    async def exchange(self, socket: ClientConnection, report: Report,
                       dialect: ClientDialect, start: int) -> bool:
        """Send from byte `start` while reading results, until close;
        True when all of it, close message included, was sent."""
        timer = ResultTimer(dialect, report, self.on_result)
        sender = asyncio.create_task(
            self.send_from(socket, report, dialect, start))
        try:
            async for raw in socket:
                timer.message(raw, self.clock())
        except ConnectionClosed:
            pass  # the close code says how
        finally:
            sent_all = sender.done() and not sender.cancelled() and (
                sender.exception() is None)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        return sent_all

    async def send_from(self, socket: ClientConnection, report: Report,
                        dialect: ClientDialect, start: int) -> None:
        audio, clock = self.audio, report.audio_clock
        chunk = audio.bytes_per_second * self.chunk_ms // 1000
        chunk -= chunk % (2 if audio.encoding == "linear16" else 1)
        shortest = audio.bytes_per_second * dialect.min_chunk_ms // 1000
        remaining = len(audio.payload) - start
        for begin, end in chunk_bounds(remaining, chunk, shortest):
            end_s = (start + end) / audio.bytes_per_second
            if self.realtime:  # audio held through an outage goes at once
                await self.sleep(max(0.0, clock.origin + end_s - self.clock()))
            await self.send(socket, report,
                            audio.payload[start + begin:start + end])
            clock.record(end_s, self.clock())
            report.chunks_sent += 1
        await self.send(socket, report, dialect.close_message)

    async def send(self, socket: ClientConnection, report: Report,
                   message: bytes | str) -> None:
        await socket.send(message)
        size = len(message.encode() if isinstance(message, str)
                   else message)
        report.bytes_sent += size
        report.framing_sent += frame_header_bytes(size, masked=True)


def reconnection_records(run: Reconnection, fixture: AudioFixture | None,
                         stream_id: str, dialect: str) -> list[Record]:
    """A stream record per connection (`<stream_id>-c1`, `-c2`, ...) and,
    for a fixture, the utterance records of the whole file under
    `stream_id`: the transcript the connections made together."""
    last = len(run.connections)
    records: list[Record] = [
        StreamRecord(
            stream_id=f"{stream_id}-c{n}", close_code=c.close_code,
            reconnected=n < last, started_at=c.started, ended_at=c.ended)
        for n, c in enumerate(run.connections, start=1)
    ]
    if fixture is not None:
        records += utterance_records(run.report, fixture, stream_id,
                                     dialect)
    return records


def describe(run: Reconnection) -> list[str]:
    lines = [
        f"connection {n}: from {c.resume_s:.2f} s, closed {c.close_code}"
        f" {c.close_reason}".rstrip()
        for n, c in enumerate(run.connections, start=1)
    ]
    if run.gave_up:
        lines.append("gave up: the service did not come back")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.reconnecting_client")
    parser.add_argument("file", type=Path)
    parser.add_argument("--dialect", choices=sorted(DIALECTS),
                        default="deepgram")
    parser.add_argument("--chunk-ms", type=int, default=100,
                        help="audio per message, 20 to 250 ms")
    parser.add_argument("--realtime", action="store_true",
                        help="send at the pace of speech")
    parser.add_argument("--url", default="ws://127.0.0.1:8004")
    parser.add_argument("--key", default=None)
    parser.add_argument("--max-attempts", type=int,
                        default=Backoff.max_attempts,
                        help="tries without a new final before giving up")
    parser.add_argument("--records", type=Path, default=None,
                        help="write SLI records (JSONL) here")
    args = parser.parse_args(argv)
    if not 20 <= args.chunk_ms <= 250:
        parser.error("--chunk-ms must be from 20 to 250")
    if args.max_attempts < 1:
        parser.error("--max-attempts must be at least 1")
    keys = os.environ.get("SPEECH_API_KEYS", "")
    key = args.key or keys.split(",")[0].strip()
    if not key:
        parser.error("give --key or set SPEECH_API_KEYS")
    client = ReconnectingClient(
        args.url, DIALECTS[args.dialect], key, load_audio(args.file),
        chunk_ms=args.chunk_ms, realtime=args.realtime,
        backoff=Backoff(max_attempts=args.max_attempts),
        on_result=print_result)
    run = asyncio.run(client.run())
    print("\r\033[K" + "\n".join(describe(run)))
    if args.records is not None:
        stream_id = f"{args.dialect}-{uuid.uuid4().hex[:12]}"
        records = reconnection_records(run, fixture_for(args.file),
                                       stream_id, args.dialect)
        write_records(args.records, records)
        print(f"wrote {len(records)} records to {args.records}")
    return 1 if run.gave_up else 0


if __name__ == "__main__":
    sys.exit(main())

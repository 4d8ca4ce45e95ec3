"""The reconnecting client against chapter 4's service, through a proxy
that resets the TCP connection mid-stream: no close frame, as when a
network path or a load balancer fails.

To put each drop at a known place, the proxy stops passing the client's
bytes on at a set point of the audio, in the middle of an utterance,
waits until the client has heard the finals the service makes of the
audio before it, then resets both sides. The service has then heard
part of the open utterance and finalised none of it, and the client
must resume at the end of the last final it got. Every wait is bounded
by `TIMEOUT_S`; the backoff's waits go through a sleep that records
them and waits for nothing.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from websockets.asyncio.client import ClientConnection

from ch04_streaming.client import (
    DIALECTS,
    AudioClock,
    ClientAudio,
    HeardUtterance,
    Report,
    Result,
    load_audio,
    stream,
)
from ch04_streaming.engine import load_lexicon
from ch04_streaming.mock_matcher import Lexicon
from ch11_slo.records import (
    Record,
    StreamRecord,
    UtteranceRecord,
    read_records,
)
from ch11_slo.sli import measure_slis
from ch11_slo.targets import tier_targets
from examples.fixtures import MANIFEST_PATH, load_manifest
from examples.reconnecting_client import (
    Backoff,
    Connection,
    ReconnectingClient,
    Reconnection,
    forget_resent,
    main,
    reconnection_records,
    resume_byte,
)
from examples.sli_records import utterance_records
from tests.ch04.harness import KEY, Running, running_server

TIMEOUT_S = 60.0
CALL = load_manifest().get("support_call")  # ten utterances, 44 s
AUDIO = load_audio(CALL.file())
VOICE_AI = tier_targets("voice-ai")
FRAMES = 0.02  # how far a resumed stream's word times may move
QUICK = Backoff(base_s=0.01, cap_s=0.04, max_attempts=3)


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return load_lexicon(MANIFEST_PATH)


@dataclass(frozen=True)
class Cut:
    """Hold the client's bytes after `hold_after` of them, and reset
    the connection once the client has heard `finals` finals in all."""

    hold_after: int
    finals: int = 0


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset: no close frame, no orderly FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class DroppingProxy:
    """Relays TCP to the service, connection n cut as `cuts[n]` says;
    later ones pass whole. With `gone_after_cuts`, the proxy stops
    listening at its last cut, and every connection after it is
    refused. `heard` is the client's `on_result`: it counts finals."""

    upstream_port: int
    cuts: Sequence[Cut]
    gone_after_cuts: bool = False
    accepted: int = 0
    finals: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None
    relays: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def heard(self, result: Result) -> None:
        if result.is_final and result.text:
            self.finals += 1
            self.progress.set()

    async def until_heard(self, finals: int) -> None:
        while self.finals < finals:
            self.progress.clear()
            await self.progress.wait()

    async def relay(self, client_reader: asyncio.StreamReader,
                    client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.relays.add(task)
        index, self.accepted = self.accepted, self.accepted + 1
        cut = self.cuts[index] if index < len(self.cuts) else None
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.upstream_port)
        up = asyncio.create_task(pipe(
            client_reader, upstream_writer,
            None if cut is None else cut.hold_after))
        down = asyncio.create_task(
            pipe(upstream_reader, client_writer, None))
        done, _ = await asyncio.wait(
            {up, down}, return_when=asyncio.FIRST_COMPLETED)
        if cut is not None and up in done and up.result():
            await self.until_heard(cut.finals)
            if self.gone_after_cuts and index == len(self.cuts) - 1:
                assert self.server is not None
                self.server.close()
            reset(client_writer)
            reset(upstream_writer)
        else:
            client_writer.close()
            upstream_writer.close()
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               hold_after: int | None) -> bool:
    """Copy until end of stream (False) or `hold_after` bytes (True)."""
    left = hold_after
    try:
        while data := await reader.read(65_536):
            if left is not None:
                data = data[:left]
                left -= len(data)
            writer.write(data)
            await writer.drain()
            if left == 0:
                return True
    except ConnectionError:
        pass
    return False


@asynccontextmanager
async def dropping_proxy(running: Running, cuts: Sequence[Cut],
                         gone_after_cuts: bool = False
                         ) -> AsyncIterator[DroppingProxy]:
    proxy = DroppingProxy(running.server.port, cuts, gone_after_cuts)
    proxy.server = await asyncio.start_server(proxy.relay, "127.0.0.1", 0)
    try:
        yield proxy
    finally:
        proxy.server.close()
        async with asyncio.timeout(TIMEOUT_S):
            await asyncio.gather(*proxy.relays, return_exceptions=True)
            await proxy.server.wait_closed()


@dataclass
class RecordedSleep:
    """The backoff's waits, recorded; none is waited for."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


async def reconnecting(url: str, dialect: str, sleep: RecordedSleep,
                       proxy: DroppingProxy | None = None) -> Reconnection:
    client = ReconnectingClient(
        url, DIALECTS[dialect], KEY, AUDIO, backoff=QUICK,
        rng=random.Random(7), sleep=sleep,
        on_result=None if proxy is None else proxy.heard)
    async with asyncio.timeout(TIMEOUT_S):
        return await client.run()


async def without_drops(running: Running, dialect: str) -> Report:
    """What the chapter 4 client hears over one unbroken connection."""
    async with asyncio.timeout(TIMEOUT_S):
        report = await stream(running.url, DIALECTS[dialect], KEY, AUDIO)
    assert report.close_code == 1000
    return report


def cuts_amid(utterances: Sequence[int], whole: Report
              ) -> tuple[list[Cut], list[float]]:
    """A cut in the middle of each of these utterances of the manifest,
    and where each connection should start: the end of the last final
    before the cut, as the unbroken stream heard it."""
    cuts, starts = [], [0.0]
    for index in utterances:
        utterance = CALL.utterances[index]
        middle = (utterance.start + utterance.end) / 2
        before = [u for u in whole.utterances
                  if u.last_word_s < utterance.start]
        cuts.append(Cut(
            hold_after=int((middle - starts[-1]) * AUDIO.bytes_per_second),
            finals=len(before)))
        starts.append(before[-1].last_word_s)
    return cuts, starts


def heard(records: Sequence[Record]) -> list[tuple[str, str, str]]:
    return [(r.outcome, r.reference, r.hypothesis) for r in records
            if isinstance(r, UtteranceRecord)]


def streams(records: Sequence[Record]) -> list[StreamRecord]:
    return [r for r in records if isinstance(r, StreamRecord)]


def word_times(report: Report) -> list[float]:
    """The first word's start and the last word's end of every final."""
    return [t for u in report.utterances
            for t in (u.first_word_s, u.last_word_s)]


@pytest.mark.parametrize("dialect", ["deepgram", "assemblyai"])
@pytest.mark.parametrize("amid", [(4,), (4, 6)],
                         ids=["one drop", "two drops"])
async def test_after_each_drop_the_client_resumes_at_its_last_final(
        lexicon: Lexicon, dialect: str, amid: tuple[int, ...]) -> None:
    sleep = RecordedSleep()
    async with running_server(lexicon) as running:
        whole = await without_drops(running, dialect)
        cuts, starts = cuts_amid(amid, whole)
        async with dropping_proxy(running, cuts) as proxy:
            run = await reconnecting(proxy.url, dialect, sleep, proxy)
    assert not run.gave_up
    assert [c.close_code for c in run.connections] == [
        1006] * len(cuts) + [1000]
    # The service times words by 10 ms frames, which start elsewhere in
    # a stream resumed off their grid: times may move by a frame or so.
    assert [c.resume_s for c in run.connections] == pytest.approx(
        starts, abs=FRAMES)
    assert len(sleep.delays) == len(cuts)
    # Finals heard after a resume are in the file's time.
    assert word_times(run.report) == pytest.approx(word_times(whole),
                                                   abs=FRAMES)
    records = reconnection_records(run, CALL, "s", dialect)
    # Each utterance once, in order, heard as over an unbroken stream.
    expected = utterance_records(whole, CALL, "whole", dialect)
    assert heard(records) == heard(expected)
    assert all(outcome == "ok" for outcome, _, _ in heard(records))
    assert " ".join(ref for _, ref, _ in heard(records)) == " ".join(
        u.text for u in CALL.utterances)
    assert [s.reconnected for s in streams(records)] == [
        True] * len(cuts) + [False]
    slis = measure_slis(records, VOICE_AI)
    assert slis.reconnection == 1.0
    assert slis.drop_rate == pytest.approx(len(cuts) / (len(cuts) + 1))


async def test_with_the_service_gone_the_client_gives_up(
        lexicon: Lexicon) -> None:
    sleep = RecordedSleep()
    async with running_server(lexicon) as running:
        whole = await without_drops(running, "deepgram")
        cuts, _ = cuts_amid([4], whole)
        async with dropping_proxy(running, cuts,
                                  gone_after_cuts=True) as proxy:
            run = await reconnecting(proxy.url, "deepgram", sleep, proxy)
    assert run.gave_up
    assert [c.close_code for c in run.connections] == [1006]
    assert len(sleep.delays) == QUICK.max_attempts
    for attempt, delay in enumerate(sleep.delays):
        assert 0 <= delay <= min(QUICK.cap_s, QUICK.base_s * 2**attempt)
    records = reconnection_records(run, CALL, "s", "deepgram")
    [dropped] = streams(records)
    assert dropped.reconnected is False
    slis = measure_slis(records, VOICE_AI)
    assert slis.drop_rate == 1.0
    assert slis.reconnection == 0.0
    # What was heard before the drop stands; the rest never came.
    expected = heard(utterance_records(whole, CALL, "whole", "deepgram"))
    finished = [h for h in heard(records) if h[0] == "ok"]
    assert finished == expected[:cuts[0].finals]
    outcomes = [outcome for outcome, _, _ in heard(records)]
    # the utterance cut and every one after it
    assert outcomes.count("no_final") == len(CALL.utterances) - 4


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_stream_that_never_connected_is_not_retried() -> None:
    sleep = RecordedSleep()
    with pytest.raises(ConnectionRefusedError):
        await reconnecting(f"ws://127.0.0.1:{closed_port()}", "deepgram",
                           sleep)
    assert sleep.delays == []


@dataclass
class ScriptedClient(ReconnectingClient):
    """Connections that follow a script: each number is a drop after a
    final ending there, each None a connect that failed; once the
    script is done, a connection closes in order."""

    script: list[float | None] = field(default_factory=list)

    async def connection(self, run: Reconnection,
                         resume_s: float) -> Connection | None:
        if self.script and self.script[0] is None:
            self.script.pop(0)
            return None
        now = datetime.now(UTC)
        code = 1006 if self.script else 1000
        heard_to = self.script.pop(0) if self.script else None
        if heard_to is not None and heard_to > resume_s:
            run.report.utterances.append(HeardUtterance(
                "words", heard_to - 1, heard_to, None, 0.0, None, 0.0, 0.0))
        connection = Connection(resume_s, now, now, code, "")
        run.connections.append(connection)
        return connection


@pytest.mark.parametrize(("script", "tries", "gave_up"), [
    # after a final, three failed connects in a row: given up
    ([2.0, None, None, None], [0, 1, 2], True),
    # a connection that drops again with no new final counts as a try
    ([2.0, None, 2.0, None], [0, 1, 2], True),
    # a new final starts the count again
    ([2.0, None, None, 5.0, None, None], [0, 1, 2, 0, 1, 2], False),
])
async def test_tries_without_a_new_final_are_bounded(
        script: list[float | None], tries: list[int],
        gave_up: bool) -> None:
    sleep = RecordedSleep()
    client = ScriptedClient(
        "ws://unused", DIALECTS["deepgram"], KEY, AUDIO, backoff=QUICK,
        rng=random.Random(3), sleep=sleep, script=script)
    async with asyncio.timeout(TIMEOUT_S):
        run = await client.run()
    assert run.gave_up is gave_up
    assert len(sleep.delays) == len(tries)
    for attempt, delay in zip(tries, sleep.delays, strict=True):
        assert 0 <= delay <= min(QUICK.cap_s, QUICK.base_s * 2**attempt)
    resumed = [c.resume_s for c in run.connections]
    assert resumed == sorted(resumed)


def test_audio_sent_again_is_dated_by_its_new_sending() -> None:
    clock = AudioClock(paced=False)
    for n in range(1, 6):
        clock.record(n / 10, at=float(n))
    forget_resent(clock, 0.25)  # the third chunk holds 0.2 to 0.3
    assert clock.audio_ends == [0.1, 0.2, 0.3]
    forget_resent(clock, 0.2)
    assert clock.sent_at == [1.0, 2.0]
    forget_resent(clock, 0.0)
    assert clock.audio_ends == []


@dataclass
class PacedClock:
    """A clock that only the client's sleeps move; sends are recorded."""

    now: float
    slept: list[float] = field(default_factory=list)
    sent: list[bytes | str] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def send(self, message: bytes | str) -> None:
        self.sent.append(message)


async def test_paced_audio_held_through_an_outage_goes_at_once() -> None:
    three_s = ClientAudio(bytes(2 * 16_000 * 3), "linear16", 16_000)
    clock = PacedClock(now=2.0)  # capture began at 0: 2 s are held
    client = ReconnectingClient(
        "ws://unused", DIALECTS["deepgram"], KEY, three_s, realtime=True,
        clock=clock, sleep=clock.sleep)
    report = Report(audio_clock=AudioClock(paced=True, origin=0.0))
    resume = resume_byte(three_s, 1.0)
    await client.send_from(cast(ClientConnection, clock), report,
                           DIALECTS["deepgram"], resume)
    # 1 s of audio from the resume point is there already; the last
    # second is captured, and sent, at the pace of speech.
    assert clock.slept == pytest.approx([0.0] * 10 + [0.1] * 10)
    assert len(clock.sent) == 20 + 1  # and the close message
    assert b"".join(m for m in clock.sent if isinstance(m, bytes)) == (
        three_s.payload[resume:])


async def test_the_command_writes_a_record_per_connection(
        lexicon: Lexicon, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "records.jsonl"
    async with running_server(lexicon) as running:
        cut = Cut(hold_after=len(AUDIO.payload) // 2)
        async with dropping_proxy(running, [cut]) as proxy:
            argv = [str(CALL.file()), "--url", proxy.url, "--key", KEY,
                    "--records", str(out)]
            async with asyncio.timeout(TIMEOUT_S):
                status = await asyncio.to_thread(main, argv)
    assert status == 0
    records = read_records(out)
    assert [(s.close_code, s.reconnected) for s in streams(records)] == [
        (1006, True), (1000, False)]
    assert all(outcome == "ok" for outcome, _, _ in heard(records))
    assert "connection 2: from" in capsys.readouterr().out


class DrainedThenDone(ReconnectingClient):
    """A first connection that a draining server closes with 1001: in
    order, but before the client had sent all its audio (`sent_all`
    as given); then a connection that finishes."""

    first_sent_all: bool = False

    async def connection(self, run: Reconnection,
                         resume_s: float) -> Connection | None:
        now = datetime.now(UTC)
        first = not run.connections
        connection = Connection(
            resume_s, now, now, 1001 if first else 1000,
            "server shutting down" if first else "",
            self.first_sent_all if first else True)
        run.connections.append(connection)
        return connection


@pytest.mark.parametrize(("sent_all", "connections"), [(False, 2),
                                                       (True, 1)])
async def test_a_1001_before_the_end_of_the_audio_is_resumed(
        sent_all: bool, connections: int) -> None:
    """A draining replica (chapter 12) closes in order, 1001, and the
    rest of the file must still be heard elsewhere; a 1001 after all
    was sent is an ordinary end."""
    client = DrainedThenDone(
        "ws://unused", DIALECTS["deepgram"], KEY, AUDIO, backoff=QUICK,
        rng=random.Random(3), sleep=RecordedSleep())
    client.first_sent_all = sent_all
    async with asyncio.timeout(TIMEOUT_S):
        run = await client.run()
    assert len(run.connections) == connections
    assert not run.gave_up
    assert not run.connections[0].dropped  # orderly: not an SLI drop
    assert run.connections[0].unfinished is not sent_all


async def test_the_exchange_says_whether_all_was_sent(
        lexicon: Lexicon) -> None:
    """Against chapter 4's service: a server that shuts down while the
    client still has audio to send leaves it unsent."""
    async with running_server(lexicon) as running:
        stuck = asyncio.Event()

        async def never(_: float) -> None:
            stuck.set()
            await asyncio.Event().wait()  # a microphone still talking

        client = ReconnectingClient(
            running.url, DIALECTS["deepgram"], KEY, AUDIO, realtime=True,
            sleep=never)
        run = Reconnection(Report(audio_clock=AudioClock(True)))
        task = asyncio.create_task(client.connection(run, 0.0))
        async with asyncio.timeout(TIMEOUT_S):
            await stuck.wait()
            await running.server.shutdown()
            connection = await task
    assert connection is not None
    assert (connection.close_code, connection.sent_all) == (1001, False)
    assert connection.unfinished and not connection.dropped

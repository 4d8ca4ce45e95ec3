"""A stalled link, measured: buffering against dropping stale audio.

Chapter 5, "WebSocket for audio: binary framing, persistent connections,
backpressure". One stream of the conversation fixture, at the pace of
speech, through a link that stalls: for `stall_s` seconds the client's
chunks are held, then arrive all at once, as TCP delivers a backlog
after a stall. The model decodes at 0.6 x real time, so a backlog
drains slowly. Run twice on chapter 4's service: buffering (the reader
waits at the cap, every chunk is decoded, late) and dropping stale audio
(`?backpressure=drop`: the oldest undecoded audio goes, the stream is
live again). For the chunks spoken in the `window_s` after the stall it
prints chunk-to-result latency (p50, p95: from when a chunk was spoken
to the first result that covers it), and the fixture's reference words
missing from the finals.

    python -m ch05_protocols.stall [--stall-s 4] [--window-s 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ch03_gpu.device import Accelerator, CostModel
from ch04_streaming.app import session_factory
from ch04_streaming.auth import ApiKeys
from ch04_streaming.backpressure import Backpressure
from ch04_streaming.dialects.dialect import StreamDefaults
from ch04_streaming.engine import LocalMatching, MockRecognizer, load_lexicon
from ch04_streaming.scheduler import DirectScheduler
from ch04_streaming.server import ServerLimits, SpeechServer
from ch04_streaming.settings import DEFAULT_MANIFEST, fixture_file
from ch04_streaming.stream_handler import ConnectionLimits
from ch05_protocols.ws_dialects import BINARY

RATE = 16_000
BYTES_PER_S = 2 * RATE  # linear16


@dataclass(frozen=True)
class StallSetup:
    fixture: str = "support_call"
    chunk_ms: int = 100
    stall_at_s: float = 6.0  # mid-utterance, by the fixture's clock
    stall_s: float = 4.0
    window_s: float = 10.0  # measured after the stall
    max_pending_s: float = 1.0  # the cap, for both policies
    # The model: 20 ms a call and 0.6 s per second of audio, so after a
    # stall it gains only 0.4 s on the backlog each second.
    cost: CostModel = field(
        default_factory=lambda: CostModel(fixed_ms=20, per_audio_s_ms=600))

    @property
    def stall_end_s(self) -> float:
        return self.stall_at_s + self.stall_s

    @property
    def stream_s(self) -> float:
        """Audio sent: up to the end of the window, and a second more."""
        return self.stall_end_s + self.window_s + 1.0


@dataclass(frozen=True)
class ReferenceWord:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Fixture:
    pcm: bytes  # linear16, 16 kHz, mono
    words: tuple[ReferenceWord, ...]


def load_fixture(fixture_id: str, manifest: Path = DEFAULT_MANIFEST
                 ) -> Fixture:
    """The fixture's audio, and its words with their times."""
    entry = next(f for f in json.loads(manifest.read_text())["fixtures"]
                 if f["id"] == fixture_id)
    samples, rate = sf.read(str(fixture_file(manifest, entry["path"])),
                            dtype="int16")
    if rate != RATE:
        raise ValueError(f"{fixture_id}: need 16 kHz audio, not {rate}")
    words = tuple(ReferenceWord(w["word"], w["start"], w["end"])
                  for u in entry["utterances"] for w in u["words"])
    return Fixture(samples.astype("<i2").tobytes(), words)


@dataclass
class StreamRun:
    """What the client saw: when each chunk was spoken and sent, when
    each result came and what stream time it covered, the finals."""

    spoken_at: list[float] = field(default_factory=list)  # chunk end
    results: list[tuple[float, float]] = field(
        default_factory=list)  # (arrived, covers up to stream time)
    finals: list[str] = field(default_factory=list)
    dropped_audio_s: float = 0.0
    closed_at: float = 0.0


def send_time(end_s: float, setup: StallSetup) -> float:
    """When a chunk ending at `end_s` leaves: once spoken, or, while the
    link stalls, at the stall's end with the rest of the backlog."""
    if setup.stall_at_s <= end_s < setup.stall_end_s:
        return setup.stall_end_s
    return end_s


async def stream_through_stall(url: str, key: str, fixture: Fixture,
                               setup: StallSetup, policy: Backpressure
                               ) -> StreamRun:
    run = StreamRun()
    chunk = BYTES_PER_S * setup.chunk_ms // 1000
    last = min(len(fixture.pcm), round(setup.stream_s * BYTES_PER_S))
    target = (f"{url}{BINARY.path}?encoding=linear16&sample_rate={RATE}"
              f"&backpressure={policy}")
    async with connect(target, additional_headers={
            "Authorization": f"Token {key}"}, max_size=2**22) as socket:
        origin = time.monotonic()

        async def send_paced() -> None:
            for start in range(0, last, chunk):
                end_s = min(start + chunk, last) / BYTES_PER_S
                due = origin + send_time(end_s, setup)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await socket.send(fixture.pcm[start:start + chunk])
                run.spoken_at.append(end_s)
            await socket.send(json.dumps({"type": "close"}))

        sender = asyncio.create_task(send_paced())
        try:
            async for raw in socket:
                message = json.loads(raw)
                arrived = time.monotonic() - origin
                if message["type"] == "transcript":
                    run.results.append((arrived, message["end"]))
                    if message["is_final"] and message["text"]:
                        run.finals.append(message["text"])
                elif message["type"] == "closed":
                    run.dropped_audio_s = message["dropped_audio_s"]
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        run.closed_at = time.monotonic() - origin
    return run


def in_speech(end_s: float, chunk_s: float,
              words: Sequence[ReferenceWord]) -> bool:
    return any(w.start < end_s and w.end > end_s - chunk_s for w in words)


def chunk_latencies(run: StreamRun, fixture: Fixture, setup: StallSetup
                    ) -> list[float]:
    """Seconds from each speech chunk of the window being spoken to the
    first result covering it; a chunk never covered waited until the
    stream closed."""
    chunk_s = setup.chunk_ms / 1000
    latencies = []
    for end_s in run.spoken_at:
        if not (setup.stall_end_s < end_s <= setup.stall_end_s
                + setup.window_s and in_speech(end_s, chunk_s,
                                               fixture.words)):
            continue
        covered = [at for at, upto in run.results if upto >= end_s - 1e-3]
        latencies.append(min(covered, default=run.closed_at) - end_s)
    return latencies


def words_lost(reference: Sequence[str], heard: Sequence[str]) -> int:
    """Reference words missing from what was heard, in order (the
    longest common subsequence leaves them out)."""
    longest = [0] * (len(heard) + 1)
    for word in reference:
        diagonal = 0
        for j, other in enumerate(heard, start=1):
            diagonal, longest[j] = longest[j], (
                diagonal + 1 if word == other
                else max(longest[j], longest[j - 1]))
    return len(reference) - longest[-1]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: a value that was seen; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class PolicyOutcome:
    policy: Backpressure
    p50_ms: float
    p95_ms: float
    chunks: int
    words_lost: int
    reference_words: int
    dropped_audio_s: float


def outcome(policy: Backpressure, run: StreamRun, fixture: Fixture,
            setup: StallSetup) -> PolicyOutcome:
    latencies = chunk_latencies(run, fixture, setup)
    # The reference: the words spoken before the stream's last chunk.
    sent_s = run.spoken_at[-1] if run.spoken_at else 0.0
    reference = [w.text for w in fixture.words if w.end <= sent_s]
    heard = " ".join(run.finals).split()
    return PolicyOutcome(
        policy=policy,
        p50_ms=round(percentile(latencies, 0.50) * 1000, 1),
        p95_ms=round(percentile(latencies, 0.95) * 1000, 1),
        chunks=len(latencies),
        words_lost=words_lost(reference, heard),
        reference_words=len(reference),
        dropped_audio_s=run.dropped_audio_s,
    )


@asynccontextmanager
async def stall_server(setup: StallSetup) -> AsyncIterator[tuple[str, str]]:
    """Chapter 4's service with this chapter's framings and a slow
    model, in this process: yields its URL and a fresh key."""
    key = secrets.token_urlsafe(8)
    lexicon = load_lexicon(DEFAULT_MANIFEST, Path("build") / "cache")
    recognizer = MockRecognizer(LocalMatching(lexicon),
                                Accelerator(setup.cost))
    limits = ServerLimits(connection=ConnectionLimits(
        max_pending_audio_s=setup.max_pending_s))
    server = SpeechServer(
        {BINARY.path: BINARY}, recognizer,
        session_factory(DirectScheduler(recognizer), limits.connection),
        ApiKeys.of(key), StreamDefaults(), limits)
    await server.start("127.0.0.1", 0)
    await recognizer.start()
    try:
        yield f"ws://127.0.0.1:{server.port}", key
    finally:
        await server.shutdown()


async def compare(setup: StallSetup) -> list[PolicyOutcome]:
    """Both policies, one after the other, on one server."""
    fixture = load_fixture(setup.fixture)
    outcomes = []
    async with stall_server(setup) as (url, key):
        for policy in (Backpressure.BUFFER, Backpressure.DROP):
            run = await stream_through_stall(url, key, fixture, setup,
                                             policy)
            outcomes.append(outcome(policy, run, fixture, setup))
    return outcomes


def stall_figures(setup: StallSetup | None = None) -> dict[str, float]:
    """The lab's figures, named for the benchmark."""
    buffer, drop = asyncio.run(compare(setup or StallSetup()))
    return {
        "stall_latency_p50_ms_buffer": buffer.p50_ms,
        "stall_latency_p95_ms_buffer": buffer.p95_ms,
        "stall_latency_p50_ms_drop": drop.p50_ms,
        "stall_latency_p95_ms_drop": drop.p95_ms,
        "stall_words_lost_buffer": buffer.words_lost,
        "stall_words_lost_drop": drop.words_lost,
        "stall_dropped_audio_s_drop": drop.dropped_audio_s,
    }


def table(outcomes: Sequence[PolicyOutcome], setup: StallSetup) -> str:
    lines = [
        f"{setup.fixture}: the link stalls {setup.stall_s:g} s at"
        f" {setup.stall_at_s:g} s; latency of the speech chunks spoken"
        f" in the {setup.window_s:g} s after it",
        f"{'policy':<8} {'p50 ms':>8} {'p95 ms':>8} {'chunks':>7}"
        f" {'words lost':>11} {'dropped s':>10}",
    ]
    lines += [
        f"{o.policy.value:<8} {o.p50_ms:>8.0f} {o.p95_ms:>8.0f}"
        f" {o.chunks:>7} {f'{o.words_lost}/{o.reference_words}':>11}"
        f" {o.dropped_audio_s:>10.2f}" for o in outcomes]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ch05_protocols.stall")
    parser.add_argument("--stall-s", type=float, default=4.0)
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--stall-at-s", type=float, default=6.0)
    args = parser.parse_args(argv)
    if args.stall_s <= 0 or args.window_s <= 0 or args.stall_at_s < 0:
        parser.error("--stall-s and --window-s must be positive")
    setup = StallSetup(stall_at_s=args.stall_at_s, stall_s=args.stall_s,
                       window_s=args.window_s)
    if setup.stream_s > 44:  # the conversation fixture's length
        parser.error("the stall and window must end by 43 s")
    print(table(asyncio.run(compare(setup)), setup))
    return 0


if __name__ == "__main__":
    sys.exit(main())

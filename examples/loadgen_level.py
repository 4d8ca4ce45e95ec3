"""One load level: N streams ramped onto a service, and what they saw.

Chapter 6, "Handling multiple concurrent streams". `run_level` starts
`streams` streams spread evenly over `ramp_s` (no thundering herd),
each looping its fixture in real time for `duration_s`, then scores
them as chapter 11 does: one stream record each, one utterance record
per utterance sent whole. Its `LevelResult` counts streams offered,
admitted, rejected and failed, and gives nearest-rank percentiles of
the final latency after the end of speech with the service's
endpointing silence taken out (an utterance never finalised counts as
later than any), of the time to first result, and the load
generator's own CPU time, so a benchmark can tell the service's limit
from its own. `capacity` picks the largest level that held the SLO.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc

from ch04_streaming.client import DIALECTS, Result
from ch05_protocols.speech.v1.speech_pb2 import StreamingRecognizeRequest
from ch11_slo.records import Record, StreamRecord, UtteranceRecord
from ch11_slo.sli import percentiles
from examples.fixtures import AudioFixture, load_manifest
from examples.loadgen_streams import (
    Pacing,
    StreamRun,
    grpc_stream,
    websocket_stream,
)
from examples.loadgen_workload import (
    Lap,
    Plan,
    cut,
    default_fixtures,
    plans,
)
from examples.sli_records import utterance_records

DEV_KEY = "dev-loadgen"  # start the service with SPEECH_API_KEYS=dev-loadgen
ENDPOINTING_S = 0.3  # the service's default trailing silence
SLO_MS = 300.0  # p95 final latency after the end of speech
STREAMS_PER_CHANNEL = 100  # gRPC calls sharing one connection


@dataclass(frozen=True)
class Target:
    """Where the load goes: a WebSocket dialect, or gRPC if `grpc`."""

    url: str = "ws://127.0.0.1:8006"
    grpc: str | None = None  # host:port of speech.v1.Speech
    dialect: str = "deepgram"
    api_key: str = DEV_KEY

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {sorted(DIALECTS)}")

    @property
    def transport(self) -> str:
        return "grpc" if self.grpc is not None else self.dialect


@dataclass
class Tally:
    """Live counts of a running level, for a progress display."""

    streams: int = 0
    active: int = 0  # started, not yet ended
    completed: int = 0  # ended as asked, after their last chunk
    admitted: int = 0  # of those ended
    rejected: int = 0
    failed: int = 0
    finals: int = 0
    # final latency after the end of speech (ms), by the service's own
    # word times: the latest finals only
    recent_ms: deque[float] = field(
        default_factory=lambda: deque(maxlen=1000))
    endpointing_s: float = ENDPOINTING_S

    def heard(self, result: Result) -> None:
        if result.is_final and result.text:
            self.finals += 1
            self.recent_ms.append(
                max(0.0, result.latency_s - self.endpointing_s) * 1000)

    @property
    def rolling_p95_ms(self) -> float | None:
        if not self.recent_ms:
            return None
        ordered = sorted(self.recent_ms)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass
class LevelResult:
    transport: str
    streams: int  # offered
    duration_s: float
    ramp_s: float
    admitted: int
    rejected: int
    failed: int  # broke once admitted, or never connected
    drain_timeouts: int  # finished sending, finals still owed at close
    utterances: int
    finals: int
    no_finals: int
    final_p50_ms: float | None  # inf: more than that share never final
    final_p95_ms: float | None
    final_p99_ms: float | None
    first_result_p95_ms: float | None
    retry_after_s: float | None  # the longest hint a refusal gave
    failures: dict[str, int]  # reason -> streams
    records: list[Record]
    cpu_s: float  # the load generator's own CPU time
    wall_s: float
    stream_s: float  # audio the admitted streams sent

    @property
    def cpu_ms_per_stream_s(self) -> float | None:
        if not self.stream_s:
            return None
        return self.cpu_s * 1000 / self.stream_s

    def meets(self, limit_ms: float = SLO_MS) -> bool:
        """Every stream admitted and none failed, p95 within limit."""
        return (self.rejected == 0 and self.failed == 0
                and self.final_p95_ms is not None
                and self.final_p95_ms <= limit_ms)


def capacity(results: Sequence[LevelResult],
             limit_ms: float = SLO_MS) -> int:
    """The most streams of a level that held the SLO; 0 if none did."""
    return max((r.streams for r in results if r.meets(limit_ms)),
               default=0)


def fixtures_of(ids: Sequence[str] | None = None) -> list[AudioFixture]:
    manifest = load_manifest()
    if not ids:
        return default_fixtures(manifest)
    return [manifest.get(i) for i in ids]


async def run_level(
    target: Target, streams: int, duration_s: float, ramp_s: float = 0.0,
    *, fixtures: Sequence[AudioFixture] | None = None, chunk_ms: int = 100,
    speed: float = 1.0, endpointing_s: float = ENDPOINTING_S,
    drain_s: float = 5.0, tally: Tally | None = None,
    stream_prefix: str = "",
) -> LevelResult:
    """Ramp `streams` streams over `ramp_s`; each sends `duration_s` of
    its fixture at `speed` times real time, then waits at most
    `drain_s` for its last finals. Stream ids are
    `{stream_prefix}n{streams}-{i}`."""
    if streams < 1 or duration_s <= 0 or ramp_s < 0 or speed <= 0:
        raise ValueError("need streams >= 1, duration > 0, ramp >= 0,"
                         " speed > 0")
    tally = tally or Tally(endpointing_s=endpointing_s)
    tally.streams = streams
    laps = [cut(f, chunk_ms) for f in (fixtures or fixtures_of())]
    chunks = max(1, round(duration_s / laps[0].chunk_s))
    pacing = Pacing(speed, drain_s)
    cpu, wall = time.process_time(), time.monotonic()
    runs = await ramp(target, laps, streams, chunks, ramp_s, pacing, tally)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    return scored(target, runs, duration_s, ramp_s, endpointing_s,
                  f"{stream_prefix}n{streams}", cpu, wall)


async def ramp(target: Target, laps: Sequence[Lap], streams: int,
               chunks: int, ramp_s: float, pacing: Pacing,
               tally: Tally) -> list[StreamRun]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    requests = {id(lap): tuple(StreamingRecognizeRequest(audio_content=c)
                               for c in lap.chunks) for lap in laps
                } if target.grpc else {}
    channels = [grpc.aio.insecure_channel(
        target.grpc, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(math.ceil(streams / STREAMS_PER_CHANNEL))
    ] if target.grpc else []
    dialect = DIALECTS[target.dialect]

    async def one(i: int, plan: Plan) -> StreamRun:
        await asyncio.sleep(max(0.0, start + ramp_s * i / streams
                                - loop.time()))
        tally.active += 1
        try:
            if target.grpc:
                run = await grpc_stream(
                    channels[i // STREAMS_PER_CHANNEL], target.api_key,
                    plan, requests[id(plan.lap)], pacing, tally.heard)
            else:
                run = await websocket_stream(
                    target.url, dialect, target.api_key, plan, pacing,
                    tally.heard)
        finally:
            tally.active -= 1
        status = run.ending.status
        tally.admitted += run.ending.admitted
        tally.completed += status == "completed"
        tally.rejected += status == "rejected"
        tally.failed += status == "failed"
        return run

    try:
        return list(await asyncio.gather(*(
            one(i, plan)
            for i, plan in enumerate(plans(laps, streams, chunks)))))
    finally:
        await asyncio.gather(*(c.close() for c in channels),
                             return_exceptions=True)


def scored(target: Target, runs: Sequence[StreamRun], duration_s: float,
           ramp_s: float, endpointing_s: float, prefix: str, cpu_s: float,
           wall_s: float) -> LevelResult:
    records: list[Record] = []
    for i, run in enumerate(runs):
        stream_id = f"{prefix}-{i:04d}"
        records.append(StreamRecord(
            stream_id=stream_id, close_code=run.ending.close_code,
            reconnected=False,
            started_at=datetime.fromtimestamp(run.started_at, UTC),
            ended_at=datetime.fromtimestamp(
                max(run.ended_at, run.started_at), UTC)))
        if run.ending.status != "rejected":
            heard = run.plan.heard_fixture(run.report.chunks_sent,
                                           endpointing_s)
            records += utterance_records(run.report, heard, stream_id,
                                         target.transport)
    utterances = [r for r in records if isinstance(r, UtteranceRecord)]
    finals = [None if u.final_latency_seconds is None
              else max(0.0, u.final_latency_seconds - endpointing_s)
              for u in utterances]
    final = percentiles(finals)
    first = percentiles([u.first_result_seconds for u in utterances])
    statuses = Counter(run.ending.status for run in runs)
    hints = [r.ending.retry_after_s for r in runs
             if r.ending.retry_after_s is not None]
    admitted = [r for r in runs if r.ending.admitted]
    return LevelResult(
        transport=target.transport, streams=len(runs),
        duration_s=duration_s, ramp_s=ramp_s,
        admitted=len(admitted), rejected=statuses["rejected"],
        failed=statuses["failed"],
        drain_timeouts=sum(r.ending.drain_timed_out for r in runs),
        utterances=len(utterances),
        finals=sum(u.outcome == "ok" for u in utterances),
        no_finals=sum(u.outcome == "no_final" for u in utterances),
        final_p50_ms=None if final is None else final.p50 * 1000,
        final_p95_ms=None if final is None else final.p95 * 1000,
        final_p99_ms=None if final is None else final.p99 * 1000,
        first_result_p95_ms=None if first is None else first.p95 * 1000,
        retry_after_s=max(hints, default=None),
        failures=dict(Counter(r.ending.reason for r in runs
                              if r.ending.status == "failed")),
        records=records, cpu_s=cpu_s, wall_s=wall_s,
        stream_s=sum(r.report.chunks_sent * r.plan.lap.chunk_s
                     for r in admitted))

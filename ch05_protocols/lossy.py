"""Head-of-line blocking, measured on a link that really loses packets.

Chapter 5, "WebTransport: QUIC datagrams, head-of-line blocking". The
lab makes a network namespace of its own, whose nftables input hook
drops a chosen share of packets at random, both ways (`netns.py`,
`loss_rule.py`), re-runs itself inside it, starts each transport's
server there and streams 60 s of the speech fixtures, back to back, at
the pace of speech in 20 ms chunks of 24 kHz linear16 (the rate
WebTransport and WebRTC serve, so that every transport's audio is
resampled alike), interim results on, over each transport at each loss
rate (0, 1, 2 and 5% by default). At each rate the transports stream
side by side, each on its own connection to its own server: the rule
drops each packet on its own chance, and the loopback has bandwidth to
spare, so one stream's losses do not touch another's.

Definitions. Each result covers the audio up to some stream time (a
binary WebSocket `transcript`'s `end`, a gRPC result's
`result_end_time`, `start` + `duration` of Deepgram's `Results` over
WebTransport and WebRTC); a chunk's chunk-to-result latency runs from
its send to the receipt of the first result that covers it, so a chunk
held behind a lost packet counts for as long as it was held
(`lossy_stats.py`). Chunks are timed inside utterances after their
first word (before it no result has words), and only results with
words count, on every transport. Per transport and rate: the p50, p99
(nearest rank) and max of those latencies, and the audio lost, the
share of the seconds sent that the server says never reached the
recogniser (the WebSocket's `closed` `audio_s`; gRPC's
`total_billed_time`, in whole seconds; the frames WebTransport's last
message says were heard; what a WebRTC call's stats say was lost). On
TCP, and on a QUIC stream, that is zero by construction: a lost packet
is sent again, and everything behind it waits (head-of-line blocking),
so they pay for loss in latency; datagrams and RTP pay in audio. The
loss each rate really had is counted by the rule and printed beside
it.

    python -m ch05_protocols.lossy [--rates 0,1,2,5] [--seconds 60]
        [--transports websocket,grpc,wt_datagrams,wt_streams,webrtc]
        [--out build/ch05/lossy] [--quick]

Writes `lossy.json` and `lossy.png` under `--out`. It needs root, `ip`
and `nft`; without them it says what is missing and exits 0. The
namespace is removed however the lab ends (SIGINT and SIGTERM too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from ch05_protocols.loss_rule import CommandError, counted, set_loss
from ch05_protocols.lossy_plot import plot
from ch05_protocols.lossy_speech import CHUNK_S, Speech, speech, speech_s
from ch05_protocols.lossy_stats import Cell, summarize
from ch05_protocols.lossy_stream import (
    CONNECT_TIMEOUT_S,
    Trace,
    Transport,
    stream_speech,
)
from ch05_protocols.lossy_transports import TRANSPORTS
from ch05_protocols.netns import (
    PREFIX,
    Namespace,
    missing_requirements,
    remove_orphans,
)

RATES = (0.0, 1.0, 2.0, 5.0)
QUICK_RATES = (0.0, 5.0)
SECONDS = 60.0
QUICK_SECONDS = 6.0
WARMUP_S = 2.0
STOP_S = 30.0  # for the lab inside to stop its servers


def exit_on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as an exit, so that the namespace is removed first."""
    raise SystemExit(128 + signum)


def numbers(text: str) -> list[float]:
    return [float(word) for word in text.split(",") if word]


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ch05_protocols.lossy",
        description="Chunk-to-result latency and audio lost per transport"
        " and packet-loss rate, on a lossy link in a network namespace.")
    parser.add_argument("--rates", type=numbers, default=None,
                        help="loss rates in %% (default 0,1,2,5)")
    parser.add_argument("--seconds", type=float, default=None,
                        help=f"audio per transport and rate (default"
                        f" {SECONDS:g})")
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
                        help="default %(default)s")
    parser.add_argument("--out", type=Path,
                        default=Path("build/ch05/lossy"))
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_SECONDS:g} s at 0 and 5%% only")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.transports = args.transports.split(",")
    unknown = sorted(set(args.transports) - set(TRANSPORTS))
    if unknown:
        parser.error(f"--transports: unknown {', '.join(unknown)};"
                     f" choose from {', '.join(TRANSPORTS)}")
    if args.rates is None:
        args.rates = list(QUICK_RATES if args.quick else RATES)
    if not all(0 <= rate <= 100 for rate in args.rates):
        parser.error("--rates: each rate is a percentage, 0 to 100")
    if args.seconds is None:
        args.seconds = QUICK_SECONDS if args.quick else SECONDS
    available = speech_s()
    if not 0 < args.seconds <= available:
        parser.error(f"--seconds: the fixtures hold {available:.0f} s of"
                     " speech; ask for up to that")
    return args


def show(cell: Cell) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:8.1f}"

    lost = ("-" if cell.audio_lost_pct is None
            else f"{cell.audio_lost_pct:.2f}")
    dropped = ("-" if cell.observed_loss_pct is None
               else f"{cell.observed_loss_pct:.2f}")
    print(f"{cell.transport:<12} {cell.loss_pct:5g}% {dropped:>8}"
          f" {cell.chunks:>6} {cell.unanswered:>10} {ms(cell.p50_ms)}"
          f" {ms(cell.p99_ms)} {ms(cell.max_ms)} {lost:>8}", flush=True)


HEADER = (f"{'transport':<12} {'loss':>6} {'dropped':>8} {'chunks':>6}"
          f" {'unanswered':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
          f" {'lost %':>8}")


async def measured(transport: Transport, port: int,
                   audio: Speech) -> Trace:
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        stream = await transport.connect(port)
    return await stream_speech(stream, audio.chunks)


async def measure(names: Sequence[str], rates: Sequence[float],
                  seconds: float,
                  report: Callable[[Cell], None] = show) -> list[Cell]:
    """Every transport at every rate, inside the lab's namespace: at
    each rate the transports stream side by side, each to its own
    server, on its own connections."""
    transports = [TRANSPORTS[name]() for name in names]
    audio = {t.rate: speech(seconds, t.rate) for t in transports}
    cells = []
    async with AsyncExitStack() as servers:
        ports = [await servers.enter_async_context(t.serve())
                 for t in transports]
        # A first stream loads what each server loads lazily: unmeasured.
        async with asyncio.TaskGroup() as warming:
            for t, port in zip(transports, ports, strict=True):
                warming.create_task(measured(t, port,
                                             speech(WARMUP_S, t.rate)))
        for rate in rates:
            set_loss(rate)
            before = counted()
            async with asyncio.TaskGroup() as streams:
                runs = [streams.create_task(measured(t, port, audio[t.rate]))
                        for t, port in zip(transports, ports, strict=True)]
            dropped = round((counted() - before).loss_pct, 3)
            for transport, run in zip(transports, runs, strict=True):
                cells.append(summarize(transport.name, rate, run.result(),
                                       audio[transport.rate].timed, dropped))
                report(cells[-1])
    return cells


def write(cells: Sequence[Cell], seconds: float, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    document = {"chunk_ms": round(CHUNK_S * 1000), "seconds": seconds,
                "cells": [asdict(c) for c in cells]}
    (out / "lossy.json").write_text(json.dumps(document, indent=2) + "\n")
    plot(cells, out / "lossy.png")


def inside(args: argparse.Namespace) -> int:
    """The lab, run inside its namespace by `outside`."""
    here = subprocess.run(["ip", "netns", "identify", str(os.getpid())],
                          capture_output=True, text=True, timeout=30,
                          check=False).stdout.strip()
    if here != args.inside:  # never drop packets on the host's network
        print(f"not inside the namespace {args.inside}: run"
              " python -m ch05_protocols.lossy", file=sys.stderr)
        return 2

    async def lab() -> list[Cell]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGTERM, task.cancel)
        print(HEADER, flush=True)
        return await measure(args.transports, args.rates, args.seconds)

    try:
        cells = asyncio.run(lab())
    except asyncio.CancelledError:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    write(cells, args.seconds, args.out)
    print(f"wrote {args.out / 'lossy.json'} and {args.out / 'lossy.png'}")
    return 0


def stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def outside(argv: Sequence[str]) -> int:
    """Make the namespace, run the lab inside it, and always remove it."""
    for name in remove_orphans():
        print(f"removed {name}, left by a lab that was killed")
    namespace = Namespace(f"{PREFIX}{os.getpid()}")
    child = None
    previous = {signal.SIGINT: signal.getsignal(signal.SIGINT),
                signal.SIGTERM: signal.signal(signal.SIGTERM,
                                              exit_on_signal)}
    try:
        namespace.create()
        print(f"namespace {namespace.name}: loopback up, loss rule"
              " installed", flush=True)
        # A gRPC server's shutdown says GOAWAY to connections still
        # closing, which gRPC's client logs as news: only errors, here.
        env = {"GRPC_VERBOSITY": "ERROR", **os.environ}
        child = subprocess.Popen(namespace.exec_args(
            [sys.executable, "-m", "ch05_protocols.lossy", *argv,
             "--inside", namespace.name]), env=env)
        return child.wait()
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        # Cleaning up is not interrupted: a second Ctrl-C waits for it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if child is not None:
                stop(child)
            namespace.remove()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None,
         missing: Callable[[], list[str]] = missing_requirements) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    args = parse(words)
    if args.inside:
        return inside(args)
    lacking = missing()
    if lacking:
        print("the lossy-link lab needs " + "; ".join(lacking)
              + ". Nothing was measured.")
        return 0
    return outside(words)


if __name__ == "__main__":
    sys.exit(main())

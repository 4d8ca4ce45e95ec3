"""The 300 ms rule, measured by chapter 11's tools.

Chapter 4, "The 300 ms rule", judged as chapter 11, "Setting SLO
targets", judges any run. Starts the chapter 4 service in this process
with the settings a reader gets (the `tuned` profile, every default),
streams the conversation and the six single utterances at the pace of
speech through both dialects, writes the per-utterance records, and
prints chapter 11's report for the voice-AI tier per dialect, with a
verdict: p95 time to first result within 300 ms, goodput at least 95%.
Time to first result runs from the moment the first word began to be
spoken, by the client's audio clock, so each 100 ms chunk's fill time
counts.

Each fixture is streamed `--runs` times per dialect, at once, each run
starting a different fraction of a chunk into the file: a microphone's
chunks fall anywhere against the words, and a single phase would
measure one fill wait only. It also counts how often an interim showed
a word its final then corrected.

    python -m examples.latency_rule [--runs 3] [--records FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from ch04_streaming.chunk_experiment import serving_locally
from ch04_streaming.client import DIALECTS, ClientAudio, load_audio, stream
from ch11_slo.records import Record, UtteranceRecord, write_records
from ch11_slo.report import format_report
from ch11_slo.sli import Slis, measure_slis
from ch11_slo.targets import TierTargets, tier_targets
from examples.fixtures import AudioFixture, Utterance, Word, load_manifest
from examples.interim_revisions import NONE, Revisions, revisions
from examples.sli_records import stream_record, utterance_records

DIALECT_NAMES = ("deepgram", "assemblyai")
TIER = "voice-ai"
CHUNK_MS = 100
DEFAULT_RUNS = 3
DEFAULT_RECORDS = Path("build") / "latency_rule" / "records.jsonl"


def speech_fixtures() -> list[AudioFixture]:
    """The conversation and the single utterances, once each."""
    return [f for f in load_manifest().fixtures
            if f.kind in ("conversation", "utterance")]


def phase_offsets(runs: int, chunk_ms: int = CHUNK_MS) -> list[float]:
    """Seconds cut from the start of run i: i/runs of a chunk."""
    return [i * chunk_ms / 1000 / runs for i in range(runs)]


def cut(audio: ClientAudio, seconds: float) -> ClientAudio:
    """The audio without its first `seconds` (the fixtures open with
    half a second of room tone, so no speech is lost)."""
    width = 2 if audio.encoding == "linear16" else 1
    skip = round(seconds * audio.sample_rate) * width
    return replace(audio, payload=audio.payload[skip:])


def earlier(fixture: AudioFixture, seconds: float) -> AudioFixture:
    """The manifest of the cut audio: every time `seconds` earlier."""
    def word(w: Word) -> Word:
        return replace(w, start=w.start - seconds, end=w.end - seconds)

    def utterance(u: Utterance) -> Utterance:
        return replace(u, start=u.start - seconds, end=u.end - seconds,
                       words=tuple(word(w) for w in u.words))

    return replace(fixture, duration_s=fixture.duration_s - seconds,
                   utterances=tuple(utterance(u) for u in fixture.utterances))


async def one_stream(url: str, key: str, fixture: AudioFixture,
                     dialect: str, offset: float
                     ) -> tuple[list[Record], Revisions]:
    audio = cut(load_audio(fixture.file()), offset)
    started = datetime.now(UTC)
    report = await stream(url, DIALECTS[dialect], key, audio,
                          chunk_ms=CHUNK_MS, realtime=True)
    stream_id = f"{dialect}-{fixture.id}-{offset * 1000:.0f}ms"
    records: list[Record] = [
        stream_record(report, stream_id, started, datetime.now(UTC))]
    records += utterance_records(report, earlier(fixture, offset),
                                 stream_id, dialect)
    return records, revisions(report.results)


async def collect(url: str, key: str, fixtures: Sequence[AudioFixture],
                  runs: int) -> tuple[list[Record], dict[str, Revisions]]:
    """Every fixture in turn; its runs in both dialects at once."""
    records: list[Record] = []
    revised = dict.fromkeys(DIALECT_NAMES, NONE)
    for fixture in fixtures:
        jobs = [(dialect, offset) for dialect in DIALECT_NAMES
                for offset in phase_offsets(runs)]
        async with asyncio.timeout(fixture.duration_s + 30):
            done = await asyncio.gather(*(
                one_stream(url, key, fixture, dialect, offset)
                for dialect, offset in jobs))
        for (dialect, _), (more, counted) in zip(jobs, done, strict=True):
            records += more
            revised[dialect] += counted
    return records, revised


def of_dialect(records: Sequence[Record], dialect: str) -> list[Record]:
    return [r for r in records if r.stream_id.startswith(f"{dialect}-")]


def rule_holds(slis: Slis, targets: TierTargets) -> bool:
    return (slis.first_result is not None
            and slis.first_result.p95 <= targets.first_result_seconds
            and slis.goodput is not None
            and slis.goodput >= targets.min_goodput)


def verdict(dialect: str, slis: Slis, targets: TierTargets) -> str:
    p95 = ("no data" if slis.first_result is None
           else f"{slis.first_result.p95 * 1000:.0f} ms")
    goodput = "no data" if slis.goodput is None else f"{slis.goodput:.1%}"
    held = "HOLDS" if rule_holds(slis, targets) else "BROKEN"
    return (f"300 ms rule, {dialect}: {held} (first result p95 {p95},"
            f" target <= {targets.first_result_seconds * 1000:.0f} ms;"
            f" goodput {goodput}, target >= {targets.min_goodput:.0%})")


def figures(records: Sequence[Record], revised: dict[str, Revisions],
            targets: TierTargets) -> dict[str, float]:
    """The headline numbers per dialect, for the benchmark's results."""
    out: dict[str, float] = {}
    for dialect in DIALECT_NAMES:
        slis = measure_slis(of_dialect(records, dialect), targets)
        if slis.first_result is not None:
            out[f"first_result_p50_ms_{dialect}"] = round(
                slis.first_result.p50 * 1000, 1)
            out[f"first_result_p95_ms_{dialect}"] = round(
                slis.first_result.p95 * 1000, 1)
        if slis.final_latency is not None:
            out[f"final_latency_p95_ms_{dialect}"] = round(
                slis.final_latency.p95 * 1000, 1)
        if slis.goodput is not None:
            out[f"goodput_{dialect}"] = round(slis.goodput, 4)
        out[f"utterances_{dialect}"] = slis.utterances
        out[f"interim_wrong_word_share_{dialect}"] = round(
            revised[dialect].wrong_word_share, 4)
    return out


async def run(runs: int = DEFAULT_RUNS,
              fixtures: Sequence[AudioFixture] | None = None
              ) -> tuple[list[Record], dict[str, Revisions]]:
    async with serving_locally() as (url, key):
        return await collect(url, key, fixtures or speech_fixtures(), runs)


async def measure(runs: int = DEFAULT_RUNS,
                  fixtures: Sequence[AudioFixture] | None = None
                  ) -> dict[str, float]:
    """Run the measurement; the figures `make bench` keeps."""
    records, revised = await run(runs, fixtures)
    return figures(records, revised, tier_targets(TIER))


def print_reports(records: Sequence[Record], revised: dict[str, Revisions],
                  targets: TierTargets) -> bool:
    held = True
    for dialect in DIALECT_NAMES:
        slis = measure_slis(of_dialect(records, dialect), targets)
        count = revised[dialect]
        print(f"\n{dialect}:\n")
        print(format_report(slis, targets))
        print(f"interims: {count.interims}, {count.revised} with a word"
              f" the final corrected ({count.wrong_words} of"
              f" {count.words} words shown, {count.wrong_word_share:.1%})")
        print(verdict(dialect, slis, targets))
        held = held and rule_holds(slis, targets)
    return held


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.latency_rule",
        description="Stream the speech fixtures at real-time pace in both"
                    " dialects and judge the 300 ms rule with chapter"
                    " 11's report; exit 1 if it does not hold.")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                        help="streams per fixture and dialect, each at"
                             f" its own chunk phase (default"
                             f" {DEFAULT_RUNS})")
    parser.add_argument("--fixture", action="append", dest="fixtures",
                        help="a fixture id (repeatable; default: the"
                             " conversation and the six utterances)")
    parser.add_argument("--records", type=Path, default=DEFAULT_RECORDS,
                        help=f"JSONL to write (default {DEFAULT_RECORDS})")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    manifest = load_manifest()
    fixtures = ([manifest.get(f) for f in args.fixtures]
                if args.fixtures else speech_fixtures())
    records, revised = asyncio.run(run(args.runs, fixtures))
    write_records(args.records, records)
    scored = sum(isinstance(r, UtteranceRecord) for r in records)
    print(f"wrote {len(records)} records ({scored} utterances) to"
          f" {args.records}; the same report:"
          f" python -m ch11_slo report {args.records} --tier {TIER}")
    return 0 if print_reports(records, revised, tier_targets(TIER)) else 1


if __name__ == "__main__":
    sys.exit(main())

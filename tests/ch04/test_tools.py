"""The chapter's measuring tools: codec bandwidth, VAD savings, chunk
sizes, and the command-line client."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ch04_streaming import chunk_experiment, codec_bandwidth, vad_savings
from ch04_streaming.client import Result
from ch04_streaming.vad import VadConfig
from ch11_slo.records import StreamRecord, UtteranceRecord, read_records
from examples import stream_file
from examples.service import running_service, wait_until_ready
from tests.ch04.harness import KEY, audio_of, reference

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_codec_costs_are_measured_from_the_fixtures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert codec_bandwidth.main() == 0
    rows = {line.split()[0] + " " + line.split()[2]: line.split()
            for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["wav 16000"][3] == "32,000"  # 16 kHz x 2 bytes
    assert rows["wav 8000"][3] == "8,000"  # 8 kHz x 1 byte of mu-law
    opus = float(rows["ogg 48000"][3].replace(",", ""))
    assert 2_000 < opus < 8_000  # 16-64 kbit/s: compressed


def test_vad_keeps_pauses_and_noise_from_the_model() -> None:
    config = VadConfig()
    talk = vad_savings.measure(audio_of("support_call"), config)
    assert talk.utterances >= 6
    assert 0.5 < talk.share_passed < 0.95
    noise = vad_savings.measure(audio_of("noise"), config)
    assert noise.share_passed == 0 and noise.audio_s == pytest.approx(5.0)


def test_vad_savings_prints_a_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert vad_savings.main([str(audio_of("quick_brown_fox"))]) == 0
    assert re.search(r"\(\d+%\) reached inference",
                     capsys.readouterr().out)


async def test_chunk_experiment_measures_one_size(tmp_path: Path) -> None:
    (row,) = await chunk_experiment.run(audio_of("living_room"), None,
                                        None, sizes=(250,))
    assert row.transcript == reference("living_room")
    assert row.sent_per_s == pytest.approx(4.0, abs=0.3)
    # 16 kHz x 2 bytes, and a masked frame header of 8 bytes per chunk.
    assert row.sent_bytes_per_s == pytest.approx(32_000, rel=0.01)
    assert row.sent_framing_per_s == pytest.approx(8 * 4.0, abs=3)
    assert row.received_bytes_per_s > 0 and row.utterances == 1
    first_p50, first_p95 = row.first_result_ms
    final_p50, final_p95 = row.final_latency_ms
    assert first_p50 is not None and first_p50 == first_p95  # one value
    assert final_p50 is not None and final_p95 is not None
    assert "250" in chunk_experiment.table([row])
    assert chunk_experiment.table([row], markdown=True).startswith(
        "| chunk ms |")
    picture = tmp_path / "chunks.png"
    chunk_experiment.plot([row], picture, "living_room")
    assert picture.read_bytes().startswith(b"\x89PNG")


def test_quantiles_are_values_that_were_seen() -> None:
    values = [0.3, 0.1, 0.2, 0.4]
    assert chunk_experiment.nearest_rank(values, 0.5) == 0.2
    assert chunk_experiment.nearest_rank(values, 0.95) == 0.4
    assert chunk_experiment.nearest_rank([], 0.5) is None


def test_stream_file_prints_interims_in_place_and_finals_on_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream_file.print_result(Result("the quick", False, 0.1))
    stream_file.print_result(Result("the quick brown fox", True, 0.32))
    out = capsys.readouterr().out
    assert out == ("\r\033[Kthe quick"
                   "\r\033[Kthe quick brown fox  [320 ms]\n")


def test_stream_file_refuses_chunks_out_of_range(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as refused:
        stream_file.main([str(audio_of("silence")), "--chunk-ms", "300",
                          "--key", KEY])
    assert refused.value.code == 2  # a usage error, as argparse exits
    assert "--chunk-ms must be from 20 to 250" in capsys.readouterr().err


async def test_stream_file_against_the_real_service(tmp_path: Path) -> None:
    args = ("-m", "ch04_streaming", "--port", "0", "--load-s", "0",
            "--warmup-s", "0")
    env = {"SPEECH_API_KEYS": KEY}
    records = tmp_path / "records.jsonl"
    async with running_service(args, env) as service:
        await wait_until_ready(service.port)
        client = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "examples.stream_file",
             str(audio_of("card_number")), "--dialect", "deepgram",
             "--url", f"ws://127.0.0.1:{service.port}",
             "--records", str(records)],
            cwd=REPO_ROOT, env={**os.environ, **env}, capture_output=True,
            text=True, timeout=30)
    assert client.returncode == 0, client.stderr
    finals = [line.rsplit("  [", 1)[0].split("\x1b[K")[-1]
              for line in client.stdout.splitlines() if "ms]" in line]
    assert " ".join(finals) == reference("card_number")
    stream, utterance = read_records(records)
    assert isinstance(stream, StreamRecord) and stream.close_code == 1000
    assert isinstance(utterance, UtteranceRecord)
    assert utterance.outcome == "ok" and utterance.fixture_id == (
        "card_number")
    assert utterance.hypothesis == utterance.reference == reference(
        "card_number")
    assert utterance.final_latency_seconds is not None
    assert utterance.first_result_seconds is not None

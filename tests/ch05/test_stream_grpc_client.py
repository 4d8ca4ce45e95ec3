"""`python -m examples.stream_grpc`, the chapter's client, end to end:
finals with their times and the bill, and a deadline that ends the call.
"""

from __future__ import annotations

import asyncio

import pytest

from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.settings import Settings
from ch05_protocols.settings import GrpcSettings
from examples.stream_grpc import main
from tests.ch04.harness import audio_of, reference
from tests.ch05.grpc_harness import KEY, BlockingScheduler, serving

FOX = "quick_brown_fox"


async def run_client(port: int, *flags: str) -> int:
    # The client runs its own event loop, as from a shell: in a thread.
    return await asyncio.to_thread(main, [
        str(audio_of(FOX)), "--url", f"127.0.0.1:{port}", "--key", KEY,
        *flags])


async def test_the_client_prints_finals_and_the_bill(
        lexicon: Lexicon, capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(lexicon) as running:
        code = await run_client(running.built.server.port, "--fast")
    out = capsys.readouterr().out
    finals = [line.split("] ", 1)[1].split("  (confidence")[0]
              for line in out.splitlines() if "(confidence" in line]
    assert code == 0
    assert " ".join(finals) == reference(FOX)
    assert "billed: " in out


async def test_a_deadline_the_results_miss_ends_the_call(
        lexicon: Lexicon, capsys: pytest.CaptureFixture[str]) -> None:
    """Decodes that never finish, audio sent at once (room for all of
    it, so the client is done writing: a client still writing when
    its call ends may hear INTERNAL, a grpc-python client matter)."""
    settings = GrpcSettings(speech=Settings(max_pending_audio_s=60.0),
                            shutdown_grace_s=2.0)
    async with serving(lexicon, settings,
                       scheduler=BlockingScheduler()) as running:
        code = await run_client(running.built.server.port, "--fast",
                                "--deadline", "0.5")
    assert code == 1
    assert "DEADLINE_EXCEEDED" in capsys.readouterr().err

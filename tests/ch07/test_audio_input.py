"""Which uploads are decoded on the event loop: short WAV files only.

A long file, or a compressed one (Opus costs about 4 ms per second of
audio), goes to a worker thread; a WAV under the size bound decodes in
about a millisecond, less than the round trip to the thread.
"""

from __future__ import annotations

from ch07_api.audio_input import QUICK_WAV_BYTES, decodes_quickly
from tests.ch07.aip_harness import fixture_bytes


def test_short_wav_files_decode_on_the_loop() -> None:
    for name in ("quick_brown_fox", "quick_brown_fox_8k_mulaw",
                 "quick_brown_fox_24k"):
        assert decodes_quickly(fixture_bytes(name)), name


def test_long_or_compressed_files_go_to_a_thread() -> None:
    long_wav = fixture_bytes("support_call")
    assert len(long_wav) > QUICK_WAV_BYTES
    assert not decodes_quickly(long_wav)
    for name in ("quick_brown_fox_flac", "quick_brown_fox_opus"):
        assert not decodes_quickly(fixture_bytes(name)), name
    assert not decodes_quickly(b"")

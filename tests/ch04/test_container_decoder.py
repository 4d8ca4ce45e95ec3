"""The container decoder on its own: audio out as bytes come in, capped.

Lag is judged on bytes, never by the clock: after each slice, the PCM
out so far is compared with what a decoder handed the same prefix (and
told it was all) can get, which is as early as the container allows.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ch04_streaming.audio import AudioFormatError
from ch04_streaming.byte_pipe import BytePipe, PipeClosedError, PipeFullError
from ch04_streaming.containers import (
    Container,
    ContainerDecoder,
    ContainerLimits,
    opened_container,
)
from tests.ch04.harness import MANIFEST
from tests.ch04.media import (
    FLAC_FIXTURE,
    OPUS_FIXTURE,
    decodable_s,
    fixture_bytes,
    live_ogg_opus,
    slices,
    stereo_flac,
    video_only_webm,
    webm_opus,
)

DURATION_S = MANIFEST.get(OPUS_FIXTURE).duration_s
MAX_LAG_S = 0.3  # what the decoder may add to the container's own wait
FLAC_BLOCK_S = 4096 / 16_000  # the fixture's FLAC frames, as sox wrote them
# FFmpeg's FLAC parser finds a frame's end at the next frame's header,
# and trusts a header once ten in a row check out (FLAC_MIN_HEADERS).
FLAC_PARSER_FRAMES = 10


def opus_streams() -> dict[str, tuple[Container, bytes]]:
    return {
        "ogg, a page a second": (Container.OGG, fixture_bytes(OPUS_FIXTURE)),
        "ogg, a page every 20 ms": (Container.OGG, live_ogg_opus(20)),
        "webm, as MediaRecorder": (Container.WEBM, webm_opus()),
    }


async def worst_lag_s(container: Container, data: bytes,
                      slice_ms: int) -> tuple[float, float]:
    """The most the decoder's output trailed what each prefix holds, and
    the seconds it gave in all, tail included."""
    decoder = ContainerDecoder(container)
    out, worst, fed = 0, 0.0, 0
    try:
        for piece in slices(data, DURATION_S, slice_ms):
            out += len(await decoder.decode(piece)) // 4
            fed += len(piece)
            worst = max(worst, decodable_s(data[:fed], container)
                        - out / 16_000)
        out += len(await decoder.finish()) // 4
    finally:
        await decoder.aclose()
    return worst, out / 16_000


@pytest.mark.parametrize("slice_ms", [20, 100, 250])
@pytest.mark.parametrize("name", list(opus_streams()))
async def test_opus_comes_out_as_soon_as_its_container_lets_it(
    name: str, slice_ms: int,
) -> None:
    container, data = opus_streams()[name]
    worst, total = await worst_lag_s(container, data, slice_ms)
    assert worst <= MAX_LAG_S
    assert total == pytest.approx(DURATION_S, abs=0.002)


async def test_flac_waits_for_ffmpeg_s_parser_and_no_longer() -> None:
    worst, total = await worst_lag_s(
        Container.FLAC, fixture_bytes(FLAC_FIXTURE), 100)
    assert worst <= FLAC_PARSER_FRAMES * FLAC_BLOCK_S
    assert total == pytest.approx(DURATION_S, abs=0.002)


async def test_a_whole_file_in_one_frame_is_decoded_at_once() -> None:
    decoder = ContainerDecoder(Container.OGG)
    pcm = await decoder.decode(fixture_bytes(OPUS_FIXTURE))
    await decoder.aclose()
    # All but the resampler's last few samples, which wait for the end.
    assert len(pcm) / 4 / 16_000 == pytest.approx(DURATION_S, abs=0.01)


async def test_a_header_dripped_a_byte_at_a_time_still_decodes() -> None:
    data = fixture_bytes(OPUS_FIXTURE)
    decoder = ContainerDecoder(Container.OGG)
    out = b"".join([await decoder.decode(data[i : i + 1])
                    for i in range(1_000)])
    out += await decoder.decode(data[1_000:]) + await decoder.finish()
    await decoder.aclose()
    assert len(out) / 4 / 16_000 == pytest.approx(DURATION_S, abs=0.002)


async def test_stereo_is_mixed_down_or_kept_interleaved() -> None:
    rate = 16_000
    left = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    right = np.zeros(rate)
    data = stereo_flac(left, right, rate)
    mono, stereo = ContainerDecoder(Container.FLAC), ContainerDecoder(
        Container.FLAC, out_channels=2)
    got = {}
    for channels, decoder in ((1, mono), (2, stereo)):
        pcm = await decoder.decode(data) + await decoder.finish()
        await decoder.aclose()
        got[channels] = np.frombuffer(pcm, "<f4").reshape(-1, channels)
    assert got[2].shape == (rate, 2)
    assert np.allclose(got[2][:, 0], left, atol=1e-4)
    assert np.allclose(got[2][:, 1], 0.0, atol=1e-4)
    assert np.allclose(got[1][:, 0], (left + right) / 2, atol=1e-4)


def garbage(size: int) -> bytes:
    return np.random.default_rng(7).bytes(size)


def cut_page(data: bytes) -> bytes:
    """The fixture with a page cut short in the middle of the stream."""
    third_page = 4_664  # where the fixture's third page starts
    return data[: third_page + 1_000] + data[third_page + 2_000 :]


async def decode_all(container: Container, data: bytes,
                     limits: ContainerLimits | None = None,
                     slice_ms: int = 100) -> bytes:
    decoder = ContainerDecoder(container, limits)
    try:
        out = [await decoder.decode(piece)
               for piece in slices(data, DURATION_S, slice_ms)]
        return b"".join(out) + await decoder.finish()
    finally:
        await decoder.aclose()
        assert not decoder.worker.is_alive()


@pytest.mark.parametrize(("container", "data", "reason"), [
    (Container.OGG, fixture_bytes(OPUS_FIXTURE)[:841] + garbage(300_000),
     "the ogg stream is not valid: Invalid data"),
    (Container.OGG, fixture_bytes(OPUS_FIXTURE)[:841] + garbage(3_000),
     "the ogg stream ended before any audio"),
    (Container.WEBM, webm_opus()[:3_000] + garbage(300_000),
     "bytes of the stream held no audio packet"),
    (Container.FLAC, fixture_bytes(FLAC_FIXTURE)[:20_000]
     + garbage(300_000), "bytes of the stream held no audio packet"),
    (Container.OGG, cut_page(fixture_bytes(OPUS_FIXTURE)),
     "the ogg stream skips 1.00 s of audio at 1.01 s: a damaged or lost"),
    (Container.WEBM, video_only_webm(),
     "the webm container holds no audio stream"),
    (Container.OGG, b"OggS" + garbage(3_000),
     "the ogg stream ended before any audio"),
], ids=["garbage-after-header", "short-garbage", "garbage-in-webm",
        "garbage-in-flac", "page-cut-short", "video-only", "not-ogg"])
async def test_what_is_not_audio_is_refused_with_the_reason(
    container: Container, data: bytes, reason: str,
) -> None:
    with pytest.raises(AudioFormatError, match=reason):
        await decode_all(container, data)


async def test_a_frame_that_decodes_to_too_much_audio_is_refused() -> None:
    limits = ContainerLimits(max_output_s=2.0)
    with pytest.raises(AudioFormatError,
                       match="one frame decodes to more than 2 s"):
        await decode_all(Container.OGG, fixture_bytes(OPUS_FIXTURE), limits,
                         slice_ms=6_000)
    # The same audio in small frames is fine.
    pcm = await decode_all(Container.OGG, fixture_bytes(OPUS_FIXTURE),
                           limits)
    assert len(pcm) / 4 / 16_000 == pytest.approx(DURATION_S, abs=0.002)


async def test_compressed_bytes_waiting_undecoded_are_capped() -> None:
    limits = ContainerLimits(max_waiting_bytes=4_096)
    with pytest.raises(AudioFormatError,
                       match="ogg: 23211 bytes would wait undecoded;"
                             " at most 4096"):
        await decode_all(Container.OGG, fixture_bytes(OPUS_FIXTURE), limits,
                         slice_ms=6_000)


async def test_no_worker_outlives_its_decoder() -> None:
    data = fixture_bytes(OPUS_FIXTURE)
    finished, abandoned = (ContainerDecoder(Container.OGG),
                           ContainerDecoder(Container.OGG))
    await finished.decode(data)
    await finished.finish()
    await abandoned.decode(data[:5_000])  # mid-stream: the client left
    for decoder in (finished, abandoned):
        await decoder.aclose()
        assert not decoder.worker.is_alive()
    assert not [t for t in threading.enumerate()
                if t.name.endswith("-decoder")]


def test_the_first_bytes_choose_the_container() -> None:
    ogg, both = frozenset({Container.OGG}), frozenset(Container)
    assert opened_container(b"OggS", both, False) is Container.OGG
    assert opened_container(b"\x1a\x45\xdf\xa3", both, False) is (
        Container.WEBM)
    assert opened_container(b"fLaC", both, False) is Container.FLAC
    assert opened_container(b"\0\0\0\0", both, False) is None  # raw
    with pytest.raises(AudioFormatError,
                       match="expected ogg data, but the stream starts as"
                             " raw audio"):
        opened_container(b"\0\0\0\0", ogg, True)
    with pytest.raises(AudioFormatError,
                       match="expected ogg data, but the stream starts as"
                             " flac"):
        opened_container(b"fLaC", ogg, True)


def test_the_pipe_hands_over_what_it_has_and_caps_the_rest() -> None:
    waiting = threading.Event()
    pipe = BytePipe(limit=8, on_starved=waiting.set)
    pipe.write(b"abcdef")
    with pytest.raises(PipeFullError, match="10 bytes would wait"):
        pipe.write(b"ghij")
    assert pipe.read(4) == b"abcd"
    assert pipe.read(100) == b"ef"  # a short read: what is buffered
    assert not waiting.is_set()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read(10)))
    reader.start()
    assert waiting.wait(5)  # the reader waits on the empty pipe
    assert pipe.starved
    pipe.write(b"later")
    reader.join(5)
    assert got == [b"later"]
    pipe.close()
    assert pipe.read(10) == b""  # the end of input
    with pytest.raises(PipeClosedError):
        pipe.write(b"more")
    assert pipe.delivered == 11

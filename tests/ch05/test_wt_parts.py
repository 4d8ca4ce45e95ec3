"""WebTransport's parts on their own: frames, reassembly, capsules and
the pinned certificate.

Chapter 5, "WebTransport: QUIC datagrams".
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ch05_protocols.wt_capsules import (
    CapsuleError,
    CapsuleReader,
    SessionClose,
    close_capsule,
)
from ch05_protocols.wt_certificate import MAX_VALIDITY, make_certificate
from ch05_protocols.wt_client import final_text
from ch05_protocols.wt_frames import (
    FrameError,
    StreamFrames,
    datagram_limit,
    frame_bytes,
    pack_frame,
    read_datagram,
)
from ch05_protocols.wt_reassembly import Reassembler, SequenceError

SIZE = 4  # bytes of audio in a test frame


def frame(n: int) -> bytes:
    return bytes([n]) * SIZE


SILENCE = bytes(SIZE)


def test_a_frame_is_a_sequence_number_then_20_ms_of_audio() -> None:
    assert frame_bytes(24_000) == 960
    assert frame_bytes(16_000) == 640
    datagram = pack_frame(258, bytes(960))
    assert datagram[:4] == b"\0\0\1\2" and len(datagram) == 964
    read = read_datagram(datagram, 960)
    assert (read.seq, read.pcm) == (258, bytes(960))


@pytest.mark.parametrize(("length", "code"), [
    (0, "datagram_too_short"), (3, "datagram_too_short"),
    (4 + 961, "datagram_too_large"), (4 + 959, "invalid_audio_frame"),
    (4, "invalid_audio_frame"),
])
def test_what_is_not_one_frame_is_refused_with_a_reason(
    length: int, code: str,
) -> None:
    with pytest.raises(FrameError) as refused:
        read_datagram(bytes(length), 960)
    assert refused.value.code == code
    assert f"{length} bytes" in str(refused.value) or code == (
        "invalid_audio_frame")


def test_the_datagram_limit_is_a_packet_less_every_header() -> None:
    # 1200 - (1 + 20 + 4 + 16) - (1 + 2) - 1 for session 0; a session
    # ID from 256 on takes 2 bytes as a quarter stream ID.
    assert datagram_limit(1200, 0) == 1155
    assert datagram_limit(1200, 256) == 1154
    assert datagram_limit(1500, 0) == 1455


def test_frames_on_a_stream_come_whole_however_the_bytes_arrive() -> None:
    frames = StreamFrames(SIZE)
    wire = pack_frame(0, frame(1)) + pack_frame(1, frame(2))
    assert frames.feed(wire[:3]) == []
    got = frames.feed(wire[3:10]) + frames.feed(wire[10:])
    assert [(f.seq, f.pcm) for f in got] == [(0, frame(1)), (1, frame(2))]
    frames.finish()  # nothing left over


def test_a_stream_that_ends_inside_a_frame_is_an_error() -> None:
    frames = StreamFrames(SIZE)
    frames.feed(pack_frame(0, frame(1))[:6])
    with pytest.raises(FrameError, match="6 bytes into a frame of 8"):
        frames.finish()


def test_frames_in_order_pass_straight_through() -> None:
    reassembler = Reassembler(SIZE, depth=3)
    assert reassembler.push(0, frame(1)) == frame(1)
    assert reassembler.push(1, frame(2)) == frame(2)
    assert reassembler.stats.concealed == 0


def test_a_reordered_frame_is_waited_for() -> None:
    reassembler = Reassembler(SIZE, depth=3)
    assert reassembler.push(1, frame(2)) == b""  # 0 may still come
    assert reassembler.push(0, frame(1)) == frame(1) + frame(2)
    assert reassembler.stats.concealed == 0


def test_a_lost_frame_becomes_silence_after_depth_later_frames() -> None:
    reassembler = Reassembler(SIZE, depth=3)
    assert reassembler.push(0, frame(1)) == frame(1)
    assert reassembler.push(2, frame(3)) == b""  # 1 is missing
    assert reassembler.push(3, frame(4)) == b""
    # Three frames past the gap: 1 is given up, its time kept.
    assert reassembler.push(4, frame(5)) == (
        SILENCE + frame(3) + frame(4) + frame(5))
    assert reassembler.stats.concealed == 1
    assert reassembler.concealed_s(0.02) == 0.02


def test_a_frame_after_its_silence_is_late_and_a_repeat_a_duplicate(
) -> None:
    reassembler = Reassembler(SIZE, depth=1)
    reassembler.push(1, frame(2))  # 0 concealed at once
    assert reassembler.push(0, frame(1)) == b""
    assert reassembler.push(1, frame(2)) == b""
    assert reassembler.push(2, frame(3)) == frame(3)
    assert reassembler.push(2, frame(3)) == b""
    stats = reassembler.stats
    assert (stats.late, stats.duplicates, stats.concealed) == (1, 2, 1)


def test_the_end_of_the_stream_flushes_what_waits() -> None:
    reassembler = Reassembler(SIZE, depth=3)
    reassembler.push(0, frame(1))
    reassembler.push(2, frame(3))
    assert reassembler.flush() == SILENCE + frame(3)
    assert reassembler.flush() == b""


def test_a_jump_past_max_ahead_is_refused_and_nothing_is_held() -> None:
    reassembler = Reassembler(SIZE, depth=3, max_ahead=500)
    with pytest.raises(SequenceError, match="501 frames ahead"):
        reassembler.push(501, frame(1))
    # 0 to 497 each have 3 frames' time after them: given up.
    assert reassembler.push(500, frame(1)) == SILENCE * 498
    assert reassembler.stats.concealed == 498


def test_a_close_capsule_carries_the_code_and_reason() -> None:
    capsule = close_capsule(1008, "policy: no")
    assert capsule[:2] == b"\x68\x43"  # 0x2843 as a 2-byte varint
    reader = CapsuleReader()
    assert reader.feed(capsule[:5]) is None  # arriving in pieces
    assert reader.feed(capsule[5:]) == SessionClose(1008, "policy: no")


def test_other_capsules_are_skipped_and_a_huge_one_refused() -> None:
    grease = bytes.fromhex("c4bc0a31c64f575f") + b"\x02ab"
    assert CapsuleReader().feed(grease + close_capsule(0, "")) == (
        SessionClose(0, ""))
    with pytest.raises(CapsuleError):
        CapsuleReader().feed(b"\x01\x80\x01\x00\x00")  # 65536 bytes


def test_finals_are_read_in_either_dialect() -> None:
    realtime = {"type": "conversation.item.input_audio_transcription"
                ".completed", "transcript": "hello there"}
    deepgram = {"type": "Results", "is_final": True, "channel": {
        "alternatives": [{"transcript": "hello there"}]}}
    interim = {**deepgram, "is_final": False}
    assert final_text(realtime) == final_text(deepgram) == "hello there"
    assert final_text(interim) is None
    assert final_text({"type": "error"}) is None


def test_the_certificate_is_what_chrome_pins(tmp_path: Path) -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    pinned = make_certificate(["127.0.0.1", "localhost"], now)
    certificate = pinned.certificate
    key = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"
    validity = (certificate.not_valid_after_utc
                - certificate.not_valid_before_utc)
    assert validity < MAX_VALIDITY
    assert certificate.not_valid_before_utc < now
    names = certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)
            ] == ["127.0.0.1"]
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert pinned.sha256 == hashlib.sha256(der).digest()
    assert base64.b64decode(pinned.sha256_base64) == pinned.sha256
    cert_path, key_path = pinned.write(tmp_path / "certs")
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()) == (
        certificate)
    assert key_path.stat().st_mode & 0o777 == 0o600


def test_a_certificate_valid_too_long_is_not_made() -> None:
    with pytest.raises(ValueError, match="less than 14 days"):
        make_certificate(["localhost"], datetime.now(UTC),
                         timedelta(days=14))

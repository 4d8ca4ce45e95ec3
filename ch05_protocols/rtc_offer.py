"""The SDP offer/answer of a WebRTC call: what is taken, what refused.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
The client's offer lists its media and, for each, the codecs it can
send; the server answers with what it will take. This service takes one
audio m-line the client sends on, in Opus (the codec every browser
offers first, and the one WebRTC mandates), and a data channel for the
events; it refuses, with a reason, an offer that cannot be parsed, has
no audio or more than one audio m-line, offers video, only listens, or
offers no Opus. aiortc would accept PCMU or G.722 too: preferring Opus
alone makes an offer without it fail here, where it can be explained,
rather than be answered with a narrowband codec the recognizer would
hear worse. aiortc gathers its ICE candidates before it answers, so the
answer carries them all: no trickle ICE is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import (
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidStateError, OperationError
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import MediaDescription, SessionDescription

OPUS = "audio/opus"
SENDING = (None, "sendrecv", "sendonly")  # no direction: sendrecv
# What aiortc's SDP parser raises on malformed text.
UNPARSABLE = (AssertionError, ValueError, IndexError, KeyError, TypeError)


class OfferError(ValueError):
    """The offer cannot be answered: HTTP 400 with this reason."""


@dataclass(frozen=True)
class Offer:
    """An offer checked once, at the edge."""

    sdp: str
    codecs: tuple[str, ...]  # the audio codecs offered, as rtpmap names


def codec_name(mime_type: str, clock_rate: int, channels: int | None
               ) -> str:
    """`opus/48000/2`, as an rtpmap line writes it (one channel is
    left unsaid: `PCMU/8000`)."""
    name = mime_type.split("/", 1)[-1]
    more = f"/{channels}" if channels and channels > 1 else ""
    return f"{name}/{clock_rate}{more}"


def audio_of(sdp: str) -> MediaDescription:
    """The offer's one audio m-line, or why there is none to take."""
    try:
        media = SessionDescription.parse(sdp).media
    except UNPARSABLE:
        raise OfferError("the offer is not valid SDP") from None
    kinds = [m.kind for m in media]
    if "video" in kinds:
        raise OfferError("the offer has video; this server takes audio"
                         " only: offer one audio track")
    if kinds.count("audio") != 1:
        raise OfferError(f"the offer has {kinds.count('audio')} audio"
                         " m-lines; send exactly one audio track")
    return media[kinds.index("audio")]


def read_offer(sdp: str) -> Offer:
    audio = audio_of(sdp)
    if audio.direction not in SENDING:
        raise OfferError(f"the offer's audio is {audio.direction}; this"
                         " server only listens: send audio")
    codecs = tuple(codec_name(c.mimeType, c.clockRate, c.channels)
                   for c in audio.rtp.codecs)
    if not any(c.mimeType.lower() == OPUS for c in audio.rtp.codecs):
        offered = ", ".join(codecs) or "no codec"
        raise OfferError(f"the offer's audio has {offered}; this server"
                         " takes opus/48000/2")
    return Offer(sdp, codecs)


def opus_only() -> list[RTCRtpCodecCapability]:
    capabilities = RTCRtpSender.getCapabilities("audio")
    return [c for c in capabilities.codecs if c.mimeType.lower() == OPUS]


# --8<-- [start:sdp_exchange]
async def answer_offer(pc: RTCPeerConnection, offer: Offer) -> str:
    """Receive the offer's audio, in Opus only; answer with every ICE
    candidate of ours, gathered before the answer is written."""
    audio = pc.addTransceiver("audio", direction="recvonly")
    audio.setCodecPreferences(opus_only())
    try:
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=offer.sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except (OperationError, InvalidStateError, *UNPARSABLE) as error:
        # No codec in common, or an offer aiortc cannot apply.
        raise OfferError(f"cannot answer the offer: {error}") from None
    answer = pc.localDescription
    assert answer is not None  # set just above
    return answer.sdp
# --8<-- [end:sdp_exchange]


def negotiated_codec(answer_sdp: str) -> str:
    """The audio codec the answer settled on: its first, and only."""
    codec = audio_of(answer_sdp).rtp.codecs[0]
    return codec_name(codec.mimeType, codec.clockRate, codec.channels)

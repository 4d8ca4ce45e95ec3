"""The Deepgram live-streaming dialect, at `/v1/listen`.

Chapter 4, "Reference architectures: Deepgram". Binary frames carry
audio; text frames carry `KeepAlive`, `Finalize` and `CloseStream`;
every server message has a `type`: `Results` (interim or final, with
`speech_final` at an endpoint), `SpeechStarted`, `UtteranceEnd` and, at
the end, `Metadata`. Raw audio may interleave up to `MAX_CHANNELS`
channels (`channels=2`): with `multichannel=true` each channel is
transcribed on its own and every message names its `[channel, count]`;
without it, this service mixes the channels down to one and transcribes
that (a choice of ours: Deepgram does not document what its live API
does then). The official `deepgram-sdk` accepts these messages from
this server.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel

from ch04_streaming.audio import MODEL_RATE, Encoding
from ch04_streaming.auth import authorization_key
from ch04_streaming.channels import MAX_CHANNELS
from ch04_streaming.containers import Container
from ch04_streaming.dialects.dialect import (
    CloseCodes,
    Closing,
    Control,
    Inbound,
    RequestError,
    StreamDefaults,
    StreamRequest,
    parse_bool,
    parse_int,
    parse_rate,
    read_binary_frame,
)
from ch04_streaming.pacing import PacingRules
from ch04_streaming.session import (
    SessionEvent,
    SessionStats,
    SpeechStartedEvent,
    StreamOptions,
    TranscriptEvent,
)
from ch04_streaming.wire import WireMessage

# Deepgram's `linear32` is 32-bit little-endian float, not integer.
ENCODINGS = {"linear16": Encoding.LINEAR16, "linear32": Encoding.FLOAT32,
             "mulaw": Encoding.MULAW}
# Encodings that come in a container, whose header says the rate: the
# query's sample_rate is ignored. `opus` is taken in Ogg or WebM, since
# how Deepgram frames bare Opus packets is not published.
CONTAINER_ENCODINGS = {
    "ogg-opus": frozenset({Container.OGG}),
    "opus": frozenset({Container.OGG, Container.WEBM}),
    "flac": frozenset({Container.FLAC}),
}
# No encoding: a container if the first bytes open one, else linear16.
SNIFFED = frozenset(Container)
MODEL_UUID = "00000000-0000-4000-8000-00000000a5e4"
CHANNEL = (0, 1)  # channel 0 of 1: Deepgram's [index, count]
# A browser's first subprotocol says what the second is: a key, or a
# short-lived token (chapter 9).
CREDENTIAL_KINDS = ("token", "bearer")


class ModelInfo(BaseModel):
    name: str = "mock-streaming"
    version: str = "2026-11-27"
    arch: str = "mock"


class ResultsMetadata(BaseModel):
    request_id: str
    model_info: ModelInfo = ModelInfo()
    model_uuid: str = MODEL_UUID


class DgWord(BaseModel):
    word: str
    start: float
    end: float
    confidence: float
    punctuated_word: str


class Alternative(BaseModel):
    transcript: str
    confidence: float
    words: list[DgWord]


class Channel(BaseModel):
    alternatives: list[Alternative]


class Results(WireMessage):
    type: Literal["Results"] = "Results"
    channel_index: tuple[int, int] = CHANNEL  # immutable: never copied
    start: float
    duration: float
    is_final: bool
    speech_final: bool
    channel: Channel
    metadata: ResultsMetadata
    from_finalize: bool | None = None  # present only when True


class SpeechStarted(WireMessage):
    type: Literal["SpeechStarted"] = "SpeechStarted"
    channel: tuple[int, int] = CHANNEL
    timestamp: float


class UtteranceEnd(WireMessage):
    type: Literal["UtteranceEnd"] = "UtteranceEnd"
    channel: tuple[int, int] = CHANNEL
    last_word_end: float


class Metadata(WireMessage):
    type: Literal["Metadata"] = "Metadata"
    transaction_key: str = "deprecated"
    request_id: str
    sha256: str
    created: str
    duration: float
    channels: int = 1


CONTROLS = {"KeepAlive": Control.KEEP_ALIVE, "Finalize": Control.FINALIZE,
            "CloseStream": Control.CLOSE}


# --8<-- [start:deepgram_results]
def results_message(event: TranscriptEvent, metadata: ResultsMetadata,
                    channels: int = 1) -> Results:
    words = event.hypothesis.words
    confidence = sum(w.confidence for w in words) / len(words) if words else 0
    return Results(
        channel_index=(event.channel, channels),
        start=event.start_s,
        duration=round(event.end_s - event.start_s, 3),
        is_final=event.hypothesis.is_final,
        speech_final=event.speech_final,
        channel=Channel(alternatives=[Alternative(
            transcript=event.hypothesis.transcript,
            confidence=round(confidence, 3),
            words=[
                DgWord(word=w.text, start=w.start, end=w.end,
                       confidence=w.confidence, punctuated_word=w.text)
                for w in words
            ],
        )]),
        metadata=metadata,  # the stream's own, built once
        from_finalize=event.from_finalize or None,
    )
# --8<-- [end:deepgram_results]


@dataclass
class DeepgramStream:
    request: StreamRequest
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat()
    )
    _audio_hash: hashlib._Hash = field(default_factory=hashlib.sha256)
    _metadata: ResultsMetadata = field(init=False)

    def __post_init__(self) -> None:
        self._metadata = ResultsMetadata(request_id=self.request_id)

    def opening(self) -> list[WireMessage]:
        return []

    def on_audio(self, payload: bytes) -> None:
        self._audio_hash.update(payload)

    def encode(self, event: SessionEvent) -> list[WireMessage]:
        count = self.request.transcribed_channels
        if isinstance(event, TranscriptEvent):
            return [results_message(event, self._metadata, count)]
        channel = (event.channel, count)
        if isinstance(event, SpeechStartedEvent):
            return [SpeechStarted(channel=channel, timestamp=event.at_s)]
        return [UtteranceEnd(channel=channel,
                             last_word_end=event.last_word_end)]

    def closing(self, stats: SessionStats) -> list[WireMessage]:
        return [Metadata(
            request_id=self.request_id,
            sha256=self._audio_hash.hexdigest(),
            created=self.created,
            duration=round(stats.received_s, 3),  # once, not per channel
            channels=self.request.transcribed_channels,
        )]


def parse_channels(query: Mapping[str, str]) -> int:
    """`channels`: how many are interleaved; Deepgram takes up to 20,
    this service `MAX_CHANNELS`."""
    channels = parse_int(query, "channels", 1, 1, 20)
    if channels is None or channels > MAX_CHANNELS:
        raise RequestError(
            f"channels={channels} is not served: at most {MAX_CHANNELS}"
            " channels, as each is decoded as a stream of its own")
    return channels


class Deepgram:
    name = "deepgram"
    label = "Deepgram"
    path = "/v1/listen"
    codes = CloseCodes(
        bad_audio=Closing(1008, "DATA-0000"),
        bad_control=Closing(1008, "DATA-0001"),
        idle=Closing(1011, "NET-0001"),
        slow_consumer=Closing(1008, "NET-0002"),
        pacing=Closing(1008, "DATA-0000"),  # never used: no rules
        # Orderly, so open utterances are finalized before the close.
        expired=Closing(1000, "maximum session duration"),
    )
    controls: Mapping[str, Control] = CONTROLS
    pacing = PacingRules()  # Deepgram takes audio at any pace

    # --8<-- [start:subprotocol_auth]
    def credential(self, headers: Mapping[str, str],
                   query: Mapping[str, str]) -> str | None:
        """`Authorization: Token KEY` (or `Bearer TOKEN`), or a
        browser's subprotocols `token, KEY` (or `bearer, TOKEN`): a
        browser cannot set headers on a WebSocket. The server echoes
        the kind, never the credential (`select_token_subprotocol`)."""
        if key := authorization_key(headers.get("Authorization", "")):
            return key
        protocols = [p.strip() for p in
                     headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if len(protocols) == 2 and protocols[0].lower() in CREDENTIAL_KINDS:
            return protocols[1]
        return None
    # --8<-- [end:subprotocol_auth]

    def error_headers(self, reason: str) -> dict[str, str]:
        # A header value must be Latin-1: escape what the reason echoes.
        return {"dg-error": reason.encode("ascii", "backslashreplace")
                .decode()}

    def parse(self, query: Mapping[str, str],
              defaults: StreamDefaults) -> StreamRequest:
        name = query.get("encoding")
        if name in CONTAINER_ENCODINGS:
            encoding, rate = Encoding.FLOAT32, MODEL_RATE  # as decoded
        elif name is None or name in ENCODINGS:
            encoding = ENCODINGS[name or "linear16"]
            rate = parse_rate(query, 16_000)
        else:
            raise RequestError(
                f"encoding {name!r} is not supported; use linear16,"
                " linear32, mulaw, ogg-opus, opus or flac, or none for"
                " a container")
        channels = parse_channels(query)
        multichannel = parse_bool(query, "multichannel", False)
        if multichannel and name in CONTAINER_ENCODINGS:
            raise RequestError("multichannel=true takes raw audio:"
                               " linear16, linear32 or mulaw")
        interim = parse_bool(query, "interim_results", False)
        gap = parse_int(query, "utterance_end_ms", None, 1000, 5000)
        if gap is not None and not interim:
            raise RequestError("utterance_end_ms needs interim_results=true")
        vad = defaults.vad
        if query.get("endpointing", "").lower() == "false":
            vad = replace(vad, endpointing_ms=vad.max_utterance_ms)
        else:
            silence = parse_int(query, "endpointing", vad.endpointing_ms,
                                10, 10_000)
            vad = replace(vad, endpointing_ms=silence or vad.endpointing_ms)
        return StreamRequest(
            encoding=encoding,
            sample_rate=rate,
            options=StreamOptions(
                interim_results=interim,
                utterance_end_ms=gap,
                vad_events=parse_bool(query, "vad_events", False),
            ),
            vad=vad,
            idle_timeout_s=defaults.idle_timeout_s,
            channels=channels,
            multichannel=multichannel,
            # Channels to split come raw: a container is mixed down.
            containers=(frozenset() if multichannel
                        else SNIFFED if name is None
                        else CONTAINER_ENCODINGS.get(name, frozenset())),
            container_required=name in CONTAINER_ENCODINGS,
        )

    def read_frame(self, frame: str | bytes) -> Inbound:
        return read_binary_frame(frame, self.controls, self.codes)

    def open_stream(self, request: StreamRequest) -> DeepgramStream:
        return DeepgramStream(request)

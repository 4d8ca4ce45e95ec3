"""A WebTransport client: audio as datagrams or on a stream, timed.

Chapter 5, "WebTransport: QUIC datagrams". `open_session` connects
with aioquic, checks the server's certificate against a SHA-256 hash,
as a browser's `serverCertificateHashes` does, instead of a CA, then
asks for a session with an extended CONNECT. The `WebTransportClient`
it gives sends 20 ms frames of audio (`send_audio`: a datagram, checked
against what a packet carries, or the next frame on the audio stream)
and client events (`send_event`), ends the input (`finish`), and
yields every message with the time it arrived (`events`), so a lab can
time each chunk. `python -m ch05_protocols.wt_client FIXTURE --url URL
--cert-hash HEX --key KEY` streams a fixture at the pace of speech
(`--fast`: as fast as it goes) and prints the finals.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import (
    DataReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import stream_is_unidirectional
from aioquic.quic.events import ConnectionTerminated, QuicEvent
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ch04_streaming.client import load_pcm
from ch05_protocols.wt_capsules import (
    CapsuleReader,
    SessionClose,
    close_capsule,
)
from ch05_protocols.wt_frames import (
    FRAME_MS,
    datagram_limit,
    frame_bytes,
    pack_frame,
)

RATE = 24_000  # PCM16 mono, as the realtime API takes it
MAX_EVENTS = 4096  # messages received and not yet read


class SessionRefusedError(Exception):
    """The server answered the CONNECT with an HTTP error."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body


class CertificateMismatchError(Exception):
    """The server's certificate is not the one pinned."""


# --8<-- [start:datagram_sender]
class DatagramTooLargeError(ValueError):
    """A datagram that no packet of this connection can carry."""


@dataclass
class DatagramSender:
    """Audio frames as datagrams: numbered, checked, sent."""

    h3: H3Connection
    session_id: int
    limit: int  # `datagram_limit` of this connection's packets
    transmit: Callable[[], None]
    next_seq: int = 0

    def send(self, pcm: bytes) -> int:
        datagram = pack_frame(self.next_seq, pcm)
        if len(datagram) > self.limit:
            # aioquic would keep it at the head of its queue for good,
            # and every datagram after it.
            raise DatagramTooLargeError(
                f"a datagram of {len(datagram)} bytes; a packet of this"
                f" connection carries at most {self.limit}")
        self.h3.send_datagram(self.session_id, datagram)
        self.transmit()
        self.next_seq += 1
        return self.next_seq - 1
# --8<-- [end:datagram_sender]


@dataclass(frozen=True)
class Sent:
    seq: int
    sent_at: float  # the client's clock


@dataclass(frozen=True)
class Received:
    message: dict[str, Any]
    received_at: float


class ClientProtocol(QuicConnectionProtocol):
    """The client's side of the QUIC connection: HTTP/3 events to the
    session that listens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic, enable_webtransport=True)
        self.listener: Callable[[H3Event | None], None] | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated) and self.listener:
            self.listener(None)
        for h3_event in self.h3.handle_event(event):
            if self.listener is not None:
                self.listener(h3_event)

    def peer_certificate_der(self) -> bytes:
        # aioquic keeps the certificate it was sent on its TLS context.
        certificate = self._quic.tls._peer_certificate
        if certificate is None:
            raise CertificateMismatchError("the server sent no certificate")
        return certificate.public_bytes(serialization.Encoding.DER)

    def max_udp_payload(self) -> int:
        return self._quic.configuration.max_datagram_size


def check_pin(protocol: ClientProtocol, sha256: bytes,
              now: datetime) -> None:
    """Accept the server's certificate only if it has this hash and is
    valid now, as a browser checks `serverCertificateHashes`."""
    der = protocol.peer_certificate_der()
    if not hmac.compare_digest(hashlib.sha256(der).digest(), sha256):
        raise CertificateMismatchError(
            "the server's certificate does not have the pinned hash")
    certificate = x509.load_der_x509_certificate(der)
    if not (certificate.not_valid_before_utc <= now
            <= certificate.not_valid_after_utc):
        raise CertificateMismatchError("the pinned certificate is not"
                                       " valid now")


@dataclass
class WebTransportClient:
    """One session: audio and events out, timed messages in."""

    protocol: ClientProtocol
    session_id: int
    mode: str  # datagram or stream
    clock: Callable[[], float] = time.monotonic
    closed: SessionClose | None = None  # the server's close capsule
    lost_events: int = 0  # arrived with MAX_EVENTS unread
    datagrams: DatagramSender = field(init=False)
    _response: asyncio.Future[tuple[int, str]] = field(init=False)
    _body: bytes = b""
    _status: int = 0
    _events_stream: int = field(init=False)
    _audio_stream: int | None = None
    _results: int | None = None  # the server's results stream
    _line: bytes = b""
    _ended: bool = False
    _received: asyncio.Queue[Received | None] = field(  # None: the end,
        default_factory=lambda: asyncio.Queue(MAX_EVENTS + 1))  # kept room
    _capsules: CapsuleReader = field(default_factory=CapsuleReader)
    _next_seq: int = 0

    def __post_init__(self) -> None:
        h3 = self.protocol.h3
        self._response = asyncio.get_running_loop().create_future()
        self.datagrams = DatagramSender(
            h3, self.session_id,
            datagram_limit(self.protocol.max_udp_payload(),
                           self.session_id),
            self.protocol.transmit)
        self.protocol.listener = self._h3_event

    async def request(self, authority: str, path: str) -> None:
        """The extended CONNECT; returns once the server accepts."""
        h3 = self.protocol.h3
        h3.send_headers(self.session_id, [
            (b":method", b"CONNECT"), (b":protocol", b"webtransport"),
            (b":scheme", b"https"), (b":authority", authority.encode()),
            (b":path", path.encode())])
        self.protocol.transmit()
        status, body = await self._response
        if status != 200:
            raise SessionRefusedError(status, body)
        self._events_stream = h3.create_webtransport_stream(
            self.session_id)
        if self.mode == "stream":
            self._audio_stream = h3.create_webtransport_stream(
                self.session_id, is_unidirectional=True)
        self.protocol.transmit()

    def send_audio(self, pcm: bytes) -> Sent:
        """One frame of audio: a datagram, or on the audio stream."""
        if self._audio_stream is None:
            seq = self.datagrams.send(pcm)
        else:
            seq, self._next_seq = self._next_seq, self._next_seq + 1
            self.protocol._quic.send_stream_data(self._audio_stream,
                                                 pack_frame(seq, pcm))
            self.protocol.transmit()
        return Sent(seq, self.clock())

    def send_event(self, event: Mapping[str, object]) -> None:
        line = json.dumps(event).encode() + b"\n"
        self.protocol._quic.send_stream_data(self._events_stream, line)
        self.protocol.transmit()

    def finish(self) -> None:
        """No more input: the server sends the last results, closes."""
        quic = self.protocol._quic
        for stream in (self._events_stream, self._audio_stream):
            if stream is not None:
                quic.send_stream_data(stream, b"", end_stream=True)
        self.protocol.transmit()

    def close(self) -> None:
        """Close the session, if the server has not (code 0)."""
        if self.closed is None and self._status == 200:
            self.protocol.h3.send_data(self.session_id, close_capsule(
                0, ""), end_stream=True)
            self.protocol.transmit()

    async def events(self) -> AsyncIterator[Received]:
        """Every message, with its arrival time, to the stream's end."""
        while (received := await self._received.get()) is not None:
            yield received

    def _h3_event(self, event: H3Event | None) -> None:
        if event is None:  # the connection ended
            self._end_of_results()
        elif isinstance(event, HeadersReceived) and (
                event.stream_id == self.session_id
                and not self._response.done()):
            self._status = int(dict(event.headers).get(b":status", b"0"))
            if self._status == 200:
                self._response.set_result((200, ""))
            elif event.stream_ended:
                self._response.set_result((self._status, ""))
        elif isinstance(event, DataReceived) and (
                event.stream_id == self.session_id):
            self._session_data(event.data, event.stream_ended)
        elif isinstance(event, WebTransportStreamDataReceived) and (
                event.session_id == self.session_id
                and stream_is_unidirectional(event.stream_id)
                and self._results in (None, event.stream_id)):
            self._results = event.stream_id
            self._results_data(event.data, event.stream_ended)

    def _session_data(self, data: bytes, ended: bool) -> None:
        if not self._response.done():  # a refusal's body
            self._body += data
            if ended:
                self._response.set_result((self._status,
                                           self._body.decode()))
            return
        self.closed = self._capsules.feed(data) or self.closed
        if ended:
            self._end_of_results()

    def _results_data(self, data: bytes, ended: bool) -> None:
        *lines, self._line = (self._line + data).split(b"\n")
        now = self.clock()
        for line in lines:
            if line.strip():
                self._deliver(Received(json.loads(line), now))
        if ended:
            self._end_of_results()

    def _deliver(self, received: Received) -> None:
        if self._received.qsize() < MAX_EVENTS:
            self._received.put_nowait(received)
        else:
            self.lost_events += 1

    def _end_of_results(self) -> None:
        if not self._response.done():
            self._response.set_exception(
                ConnectionError("the connection ended"))
        if not self._ended:
            self._ended = True
            self._received.put_nowait(None)


def quic_configuration(host: str) -> QuicConfiguration:
    return QuicConfiguration(
        alpn_protocols=H3_ALPN, is_client=True, server_name=host,
        max_datagram_frame_size=65536,
        verify_mode=ssl.CERT_NONE)  # the pinned hash is checked instead


def session_path(url: str, mode: str, key: str | None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["audio"] = mode
    if key:
        query["key"] = key
    return f"{parts.path}?{urlencode(query)}"


@asynccontextmanager
async def open_session(url: str, cert_sha256: bytes, mode: str = "datagram",
                       key: str | None = None,
                       clock: Callable[[], float] = time.monotonic,
                       timeout_s: float = 10.0,
                       ) -> AsyncIterator[WebTransportClient]:
    """A session at `url` (https://HOST:PORT/v1/realtime), audio as
    `mode` (datagram or stream), the server known by its certificate's
    SHA-256; SessionRefusedError if it answers with an HTTP error."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    async with AsyncExitStack() as stack:
        async with asyncio.timeout(timeout_s):
            protocol = await stack.enter_async_context(connect(
                host, port, configuration=quic_configuration(host),
                create_protocol=ClientProtocol))
            assert isinstance(protocol, ClientProtocol)
            check_pin(protocol, cert_sha256, datetime.now(UTC))
            session_id = protocol._quic.get_next_available_stream_id()
            client = WebTransportClient(protocol, session_id, mode, clock)
            await client.request(parts.netloc,
                                 session_path(url, mode, key))
        try:
            yield client
        finally:
            client.close()


@dataclass
class Transcript:
    finals: list[str] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        return self.received[-1].message if self.received else {}


def final_text(message: Mapping[str, Any]) -> str | None:
    """A final transcript's text, in the realtime dialect or Deepgram's."""
    kind = message.get("type")
    if kind == "conversation.item.input_audio_transcription.completed":
        return str(message["transcript"]) or None
    if kind == "Results" and message.get("is_final"):
        text = message["channel"]["alternatives"][0]["transcript"]
        return str(text) or None
    return None


def frames_of(pcm: bytes, rate: int = RATE) -> list[bytes]:
    """20 ms frames, the last padded with silence."""
    size = frame_bytes(rate)
    padded = pcm + bytes(-len(pcm) % size)
    return [padded[i:i + size] for i in range(0, len(padded), size)]


async def send_frames(client: WebTransportClient, frames: Sequence[bytes],
                      realtime: bool) -> list[Sent]:
    """Each frame once it has been spoken (at real time), or at once."""
    sent: list[Sent] = []
    origin = client.clock()
    for i, frame in enumerate(frames):
        if realtime:  # a frame leaves once it has been captured
            due = origin + (i + 1) * FRAME_MS / 1000
            await asyncio.sleep(max(0.0, due - client.clock()))
        else:
            await asyncio.sleep(0)  # let acknowledgements in
        sent.append(client.send_audio(frame))
    client.finish()
    return sent


async def transcribe(client: WebTransportClient, pcm: bytes,
                     realtime: bool = True, timeout_s: float = 60.0
                     ) -> Transcript:
    """Stream `pcm` (PCM16 mono at 24 kHz), read every message to the
    end of the session."""
    transcript = Transcript()
    async with asyncio.timeout(timeout_s):
        sender = asyncio.create_task(
            send_frames(client, frames_of(pcm), realtime))
        try:
            async for received in client.events():
                transcript.received.append(received)
                if text := final_text(received.message):
                    transcript.finals.append(text)
            transcript.sent = await sender
        finally:
            sender.cancel()
    return transcript


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ch05_protocols.wt_client",
        description="Stream a sound file over WebTransport; print the"
        " final transcripts.")
    parser.add_argument("fixture", type=Path,
                        help="a sound file (WAV, FLAC), sent as 24 kHz")
    parser.add_argument("--url", default="https://127.0.0.1:4433"
                        "/v1/realtime")
    parser.add_argument("--cert-hash", required=True,
                        help="the server's certificate SHA-256, in hex")
    parser.add_argument("--key", default=os.environ.get("SPEECH_API_KEY"),
                        help="API key (env SPEECH_API_KEY)")
    parser.add_argument("--audio", dest="mode", default="datagram",
                        choices=("datagram", "stream"),
                        help="audio as datagrams, or on a stream")
    parser.add_argument("--fast", action="store_true",
                        help="send as fast as it goes, not at real time")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    pin = bytes.fromhex(args.cert_hash.replace(":", ""))
    try:
        async with open_session(args.url, pin, args.mode,
                                args.key) as client:
            pcm = load_pcm(args.fixture, RATE)
            transcript = await transcribe(client, pcm,
                                          realtime=not args.fast)
    except (SessionRefusedError, CertificateMismatchError) as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    for text in transcript.finals:
        print(text)
    print(json.dumps(transcript.last), file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())

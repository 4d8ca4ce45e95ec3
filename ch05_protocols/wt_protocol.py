"""One QUIC connection's HTTP/3 events, routed to WebTransport sessions.

Chapter 5, "WebTransport: QUIC datagrams". aioquic hands a connection's
events to its protocol object; HTTP/3 (`H3Connection`, WebTransport
enabled) turns them into requests, stream data and datagrams. An
extended CONNECT (`:protocol webtransport`) asks for a session: the
gate decides before the session exists, answering 200 or an HTTP
status with an OpenAI-shaped JSON error. After that, a session's
datagrams, streams and CONNECT-stream data go to its
`WebTransportSession`, and a connection that ends ends its sessions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Protocol

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3Connection
from aioquic.h3.events import (
    DatagramReceived,
    DataReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from aioquic.quic.events import (
    ConnectionTerminated,
    ProtocolNegotiated,
    QuicEvent,
)

from ch04_streaming.dialects.dialect import StreamRequest
from ch05_protocols.wt_messages import error_event
from ch05_protocols.wt_session import (
    AudioMode,
    SessionLimits,
    WebTransportSession,
)


@dataclass(frozen=True)
class Admitted:
    request: StreamRequest
    mode: AudioMode


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


class SessionGate(Protocol):
    """What the server decides, and what it runs, for a session."""

    def admit(self, headers: Mapping[str, str]) -> Admitted | Refusal: ...

    def serve(self, session: WebTransportSession, admitted: Admitted,
              done: Callable[[], None]) -> None: ...


def request_headers(event: HeadersReceived) -> dict[str, str]:
    """Header names in lower case (pseudo-headers too), repeated
    values joined with commas."""
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


class WebTransportProtocol(QuicConnectionProtocol):
    """The server's side of one QUIC connection."""

    def __init__(self, *args: Any, gate: SessionGate,
                 limits: SessionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate, self.limits = gate, limits
        self.h3: H3Connection | None = None
        self.sessions: dict[int, WebTransportSession] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated):
            self.h3 = H3Connection(self._quic, enable_webtransport=True)
        elif isinstance(event, ConnectionTerminated):
            for session in list(self.sessions.values()):
                session.connection_lost()
        if self.h3 is not None:
            for h3_event in self.h3.handle_event(event):
                self.h3_event_received(self.h3, h3_event)

    def h3_event_received(self, h3: H3Connection, event: H3Event) -> None:
        if isinstance(event, WebTransportStreamDataReceived):
            session = self.sessions.get(event.session_id)
            if session is not None:
                session.stream_data_received(event.stream_id, event.data,
                                             event.stream_ended)
        elif isinstance(event, DatagramReceived):
            if session := self.sessions.get(event.stream_id):
                session.datagram_received(event.data)
        elif isinstance(event, DataReceived):
            if session := self.sessions.get(event.stream_id):
                session.session_data_received(event.data,
                                              event.stream_ended)
        elif (isinstance(event, HeadersReceived)
              and event.stream_id not in self.sessions):
            self.request_received(h3, event)

    def request_received(self, h3: H3Connection,
                         event: HeadersReceived) -> None:
        decision = self.gate.admit(request_headers(event))
        stream_id = event.stream_id
        if isinstance(decision, Refusal):
            self.refuse(h3, stream_id, decision)
            return
        h3.send_headers(stream_id, [
            (b":status", b"200"),
            (b"date", formatdate(time.time(), usegmt=True).encode()),
            (b"sec-webtransport-http3-draft", b"draft02")])
        session = WebTransportSession(
            self._quic, h3, stream_id, self.transmit, decision.mode,
            decision.request.sample_rate, self.limits)
        self.sessions[stream_id] = session
        self.transmit()
        self.gate.serve(session, decision,
                        done=lambda: self.forget(stream_id))

    def forget(self, session_id: int) -> None:
        self.sessions.pop(session_id, None)

    def refuse(self, h3: H3Connection, stream_id: int,
               refusal: Refusal) -> None:
        body = error_event(refusal.code, refusal.message).to_json()
        headers = [(b":status", str(refusal.status).encode()),
                   (b"content-type", b"application/json"),
                   *((name.encode(), value.encode())
                     for name, value in refusal.headers.items())]
        h3.send_headers(stream_id, headers)
        h3.send_data(stream_id, body.encode(), end_stream=True)
        self.transmit()

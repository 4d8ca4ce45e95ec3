"""The transports of the lossy-link lab, by name.

Chapter 5, "WebTransport: QUIC datagrams, head-of-line blocking". Each
entry builds one `Transport` (`lossy_stream.py`): it starts its own
server and opens streams to it; the lab streams the same speech over
each, at each loss rate, and reads every trace the same way. A new
transport is one class and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ch05_protocols.lossy_rtc import WebRtcTransport
from ch05_protocols.lossy_stream import Transport
from ch05_protocols.lossy_tcp import GrpcTransport, WebSocketTransport
from ch05_protocols.lossy_wt import WebTransportTransport

TRANSPORTS: dict[str, Callable[[], Transport]] = {
    "websocket": WebSocketTransport,
    "grpc": GrpcTransport,
    "wt_datagrams": partial(WebTransportTransport, "datagram"),
    "wt_streams": partial(WebTransportTransport, "stream"),
    "webrtc": WebRtcTransport,
}

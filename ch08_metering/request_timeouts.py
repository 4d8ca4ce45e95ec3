"""Read limits: a client too slow to send its request is cut off.

Chapter 8, "Idempotent event collection". A client that sends its
request a byte a second holds a connection, and the memory and task
that go with it, for as long as it likes; a few hundred such clients
starve the service. uvicorn closes a connection left idle between
requests (`timeout_keep_alive`) and, with h11, refuses a request head
over a size (`h11_max_incomplete_event_size`; httptools has no such
limit), but gives no deadline for a head, so its h11 protocol is
extended here with one: the head must be in within `header_s` of the
connection opening, or of the previous response. It is a deadline, not
an idle timeout, so trickling bytes does not put it off. The body has
its own deadline, in the app that reads it (`ingest_api.read_body`). A
client that sent part of a head is answered 408 and the connection
closed; one that sent nothing is only closed. Slow clients are not
faults of the server: logged at INFO.
"""

from __future__ import annotations

import asyncio
import json
import logging

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import (
    H11Protocol,
    RequestResponseCycle,
)

log = logging.getLogger("ch08_metering")

HEADER_TIMEOUT_S = 10.0  # a head is a few hundred bytes
MAX_HEAD_BYTES = 16 * 1024  # larger is answered 400
KEEP_ALIVE_S = 5  # idle between requests, then closed


def timeout_response(seconds: float) -> bytes:
    """A 408 in the API's error shape, ending the connection."""
    body = json.dumps({"type": "Error", "status": 408, "reason":
                       f"request head not received within {seconds:g} s"})
    return (b"HTTP/1.1 408 Request Timeout\r\n"
            b"content-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (len(body), body.encode()))


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for each request head."""

    header_timeout_s = HEADER_TIMEOUT_S
    _deadline: asyncio.TimerHandle | None = None
    _bytes_since_armed = False

    def connection_made(  # type: ignore[override]
            self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._arm_deadline()

    def data_received(self, data: bytes) -> None:
        self._bytes_since_armed = True
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_deadline()  # for the next request's head

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._bytes_since_armed = False
        if not self.transport.is_closing():
            self._deadline = self.loop.call_later(
                self.header_timeout_s, self._deadline_passed, self.cycle)

    def _deadline_passed(self, cycle: RequestResponseCycle | None) -> None:
        # A new head makes a new cycle; a cycle still being answered
        # (a pipelined request) has had its head.
        waiting = cycle is None or cycle.response_complete
        if self.cycle is not cycle or not waiting:
            return
        if self.transport.is_closing():
            return
        host, port = self.client or ("unknown", 0)
        log.info("event=request_timeout part=head client=%s:%d", host,
                 port)
        if self._bytes_since_armed:  # someone is there to be answered
            self.transport.write(timeout_response(self.header_timeout_s))
        self.transport.close()


def head_deadline_protocol(header_s: float) -> type[HeadDeadlineProtocol]:
    """The protocol class uvicorn instantiates, with this deadline."""

    class Protocol(HeadDeadlineProtocol):
        header_timeout_s = header_s

    return Protocol


def server_config(app: FastAPI, header_timeout_s: float) -> uvicorn.Config:
    """uvicorn for a plain HTTP API, its request heads bounded in size
    and time. `log_config=None`: uvicorn's records go through the
    process's logging, like every other record."""
    return uvicorn.Config(
        app, http=head_deadline_protocol(header_timeout_s), ws="none",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_keep_alive=KEEP_ALIVE_S, log_level="warning",
        log_config=None, lifespan="off")

"""The calls a WebRTC service holds: admission, the idle sweep, the drain.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
A call holds a slot from its offer to its hang-up; a service that is
loading its model, draining, or holding `max_calls` refuses the next
offer before any media is set up, with 503 and `Retry-After`. Each
call gets its own peer connection, answered with the server's host
candidates and no STUN server: a service reachable at its own address
needs none, and a client behind NAT is found from the address its
connectivity checks come from (a peer-reflexive candidate). A sweeper
asks every call's handler, ten times a second, whether its client went
quiet or it has been open too long (chapter 4's rules). On SIGTERM new
offers are refused, open calls finish their open utterances and get
their finals, and any still open after the grace are cut. The stats of
the latest ended calls are kept, a bounded number, so a client can
read its call's figures once the call is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCPeerConnection

from ch05_protocols.rtc_call import (
    CallLimits,
    CallStats,
    HandlerFactory,
    RtcCall,
)
from ch05_protocols.rtc_offer import Offer, answer_offer, negotiated_codec


class CallRefusedError(Exception):
    """No call can start now: 503, retry after a second."""


def new_call_id() -> str:
    return "rtc_" + secrets.token_hex(12)


@dataclass
class RtcCalls:
    new_handler: HandlerFactory
    ready: Callable[[], bool]  # the model is loaded
    max_calls: int = 50
    limits: CallLimits = field(default_factory=CallLimits)
    keep_ended: int = 100  # ended calls whose stats are kept
    sweep_s: float = 0.1
    clock: Callable[[], float] = time.monotonic
    draining: bool = False
    calls: dict[str, RtcCall] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _ended: OrderedDict[str, CallStats] = field(
        default_factory=OrderedDict)
    _opening: int = 0  # offers being answered
    _sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep())

    def check_admission(self) -> None:
        if self.draining:
            raise CallRefusedError("server is draining")
        if not self.ready():
            raise CallRefusedError("model loading")
        if len(self.calls) + self._opening >= self.max_calls:
            raise CallRefusedError(
                f"at capacity: {self.max_calls} calls")

    async def open(self, offer: Offer, first_event: str | None = None
                   ) -> tuple[RtcCall, str]:
        """Answer `offer` and start serving its call; the answer SDP."""
        self.check_admission()
        self._opening += 1  # its slot is held while it is answered
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            answer = await answer_offer(pc, offer)
            if self.draining:
                raise CallRefusedError("server is draining")
        except BaseException:
            await pc.close()
            raise
        finally:
            self._opening -= 1
        call = RtcCall(new_call_id(), pc, negotiated_codec(answer),
                       self.limits, first_event, self.clock)
        self.calls[call.id] = call
        self.tasks[call.id] = asyncio.create_task(self._serve(call))
        return call, answer

    async def _serve(self, call: RtcCall) -> None:
        try:
            await call.run(self.new_handler)
        finally:
            self._ended[call.id] = await call.stats()
            while len(self._ended) > self.keep_ended:
                self._ended.popitem(last=False)
            del self.calls[call.id], self.tasks[call.id]

    async def stats(self, call_id: str) -> CallStats | None:
        if (call := self.calls.get(call_id)) is not None:
            return await call.stats()
        return self._ended.get(call_id)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            now = self.clock()
            for call in list(self.calls.values()):
                if call.handler is not None:
                    call.handler.sweep(now)

    async def shutdown(self, grace_s: float) -> None:
        """Refuse new calls, let open ones finish, cut what is left."""
        self.draining = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for call in list(self.calls.values()):
            call.shutdown()
        tasks = list(self.tasks.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

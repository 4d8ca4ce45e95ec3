"""The gRPC server: recognition, health and reflection on one port.

Chapter 5, "gRPC bidirectional streaming". Health checking answers
NOT_SERVING during the cold start and while draining, as chapter 4's
`/readyz` does, so a load balancer sends no streams to a replica that
cannot serve them; reflection lets `grpcurl` list and call the service
without its proto. SIGTERM drains: health says NOT_SERVING, new calls
are refused with UNAVAILABLE, open streams finish their utterances
within the grace period, and only then does the server stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ch04_streaming.engine import Recognizer
from ch05_protocols.speech_service import SpeechService

log = logging.getLogger("ch05_protocols")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# How a recognition service is mounted on the server: ours, and
# Google's Speech API beside it (`google_speech.py`) when it is built.
ServicerAdder = Callable[[grpc.aio.Server], None]


@dataclass(frozen=True)
class Mounted:
    """A service on the server: its full name and how to mount it."""

    name: str
    add: ServicerAdder


@dataclass(eq=False)
class GrpcSpeechServer:
    speech: SpeechService
    services: Sequence[Mounted]  # every recognition service served
    server: grpc.aio.Server
    shutdown_grace_s: float = 10.0
    readiness_poll_s: float = 0.05
    health: health.aio.HealthServicer = field(
        default_factory=health.aio.HealthServicer)
    port: int = 0
    _readiness: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def recognizer(self) -> Recognizer:
        return self.speech.recognizer

    async def start(self, host: str, port: int) -> None:
        """Mount every service, listen, and report NOT_SERVING until the
        model is ready."""
        for service in self.services:
            service.add(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(
            self.health, self.server)
        names = [s.name for s in self.services]
        reflection.enable_server_reflection(
            [*names, health.SERVICE_NAME, reflection.SERVICE_NAME],
            self.server)
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        await self.set_health(NOT_SERVING)
        await self.server.start()
        self._readiness = asyncio.create_task(self._report_ready())

    async def set_health(self, status: int) -> None:
        """The same status for the server ("") and each service."""
        for name in ("", *(s.name for s in self.services)):
            await self.health.set(name, status)

    async def _report_ready(self) -> None:
        # The recognizer says whether it is ready, not when it becomes
        # so; asking 20 times a second costs nothing next to a decode.
        while not self.recognizer.ready:
            await asyncio.sleep(self.readiness_poll_s)
        if not self.speech.gate.draining:
            await self.set_health(SERVING)
            log.info("event=serving port=%d", self.port)

    async def shutdown(self) -> None:
        """Drain the streams within the grace period, then stop."""
        if self._readiness is not None:
            self._readiness.cancel()
        await self.set_health(NOT_SERVING)
        await self.speech.gate.drain(self.shutdown_grace_s)
        await self.health.enter_graceful_shutdown()
        # Calls still open are cancelled now: the grace has been spent.
        await self.server.stop(grace=None)

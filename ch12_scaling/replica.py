"""One Serve replica: chapter 6's pipeline on an accelerator of its own.

Chapter 12, "Horizontal scaling". Serve runs this class once per
replica, each in its own worker process. The replica builds chapter
6's pipeline unchanged (its admission, dialects, batching scheduler
and degradation) on its own simulated accelerator, and the Serve
proxy's WebSockets reach it through `stream_bridge`. It reports its
load twice: to the request routers (`record_routing_stats`) and to the
autoscaler (`record_autoscaling_stats`). It watches for a preemption
notice and drains when one comes; a drained replica fails its health
check, so Serve starts a replacement. Serve stopping a replica for its
own reasons (a scale-down) waits for its streams up to the deployment's
graceful-shutdown timeout, then the destructor drains what is left.
"""

# No `from __future__ import annotations` here: Serve rebuilds the
# routes' functions elsewhere, where FastAPI could not resolve a string
# annotation such as "WebSocket", and would refuse every stream (1008).
import asyncio
import json
import logging
import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from ray import serve

from ch03_gpu.device import Accelerator, CostModel
from ch04_streaming.app import build_device
from ch06_pipeline.app import Pipeline, build_pipeline
from ch06_pipeline.pipeline_scheduler import FULL
from ch12_scaling.notices import NoticeError, NoticeFile
from ch12_scaling.replica_drain import ReplicaDrain
from ch12_scaling.replica_load import ReplicaLoad
from ch12_scaling.serve_policy import (
    ACTIVE_STREAMS,
    INFLIGHT_AUDIO_S,
    QUEUE_WAIT_P95_S,
    WARM,
)
from ch12_scaling.settings import ServeSettings, stream_owners
from ch12_scaling.stream_bridge import bridge
from ch12_scaling.stream_owner import StreamOwners, residency_refusal

log = logging.getLogger("ch12_scaling")

NOTICE_POLL_S = 1.0  # AWS suggests every 5 s; the lab's GCP has 30
REPLICA_HEADER = "x-replica"
REGION_HEADER = "x-region"
RETRY_AFTER_S = 5  # a region refilled by the autoscaler, or come back

app = FastAPI(title="Speech on Ray Serve (chapter 12)")


def replica_device(settings: ServeSettings, rank: int) -> Accelerator:
    """Chapter 3's device, at this replica's cost per audio second."""
    device = build_device(settings.pipeline.speech)
    return replace(device, cost=CostModel(
        device.cost.fixed_ms, settings.accelerator_of(rank)))


@serve.ingress(app)
class SpeechReplica:
    # Serve runs an async constructor on the replica's event loop.
    async def __init__(  # type: ignore[misc]
            self, settings: ServeSettings) -> None:
        context = serve.get_replica_context()
        self.name = context.replica_id.unique_id
        self.settings = settings
        rank = context.rank.rank if context.rank else 0
        self.device = replica_device(settings, rank)
        self.capacity = settings.capacity_of(rank)
        self.region = settings.region_of(rank)
        self.rtt_ms = settings.rtt_ms_of(self.region)
        self.owners: StreamOwners | None = stream_owners(
            settings.regions, settings.residency, settings.key_owners)
        self.pipeline: Pipeline = build_pipeline(settings.pipeline,
                                                 device=self.device)
        await self.pipeline.start("127.0.0.1", 0, 0)
        self.inner = f"ws://127.0.0.1:{self.pipeline.speech.port}"
        self.drain = ReplicaDrain(self.pipeline.speech, self.pipeline.stop)
        self.tasks = [asyncio.create_task(self.pipeline.start_models()),
                      asyncio.create_task(self.watch_notices())]
        self.write_record()
        log.info("event=replica_started replica=%s", self.name)

    def write_record(self, draining: bool = False) -> None:
        """The lab's record of this replica: its process, for the tests
        and the tour that stop one; its pipeline's own port, for the
        benchmark that streams past the proxy to time it; whether it
        drains."""
        record = {"pid": os.getpid(), "capacity": self.capacity,
                  "region": self.region, "draining": draining,
                  "pipeline_port": self.pipeline.speech.port}
        path = Path(self.settings.lab_dir) / f"{self.name}.json"
        written = path.with_suffix(".tmp")  # readers see all or nothing
        written.write_text(json.dumps(record))
        written.replace(path)

    @app.websocket("/{path:path}")
    async def stream(self, websocket: WebSocket) -> None:
        if refusal := self.outside_residency(websocket):
            await websocket.send_denial_response(refusal)
            return
        await bridge(websocket, self.inner,
                     self.settings.pipeline.speech.max_message_bytes,
                     {REPLICA_HEADER: self.name, REGION_HEADER: self.region},
                     one_way_s=self.rtt_ms / 2000)

    def outside_residency(self, websocket: WebSocket) -> Response | None:
        """The router keeps a stream inside its customer's regions; this
        replica checks again, and refuses one that is not its to take
        (its customer's regions have no replica at all, say)."""
        if self.owners is None:
            return None
        scope = websocket.scope
        reason = residency_refusal(self.owners, self.region, scope["path"],
                                   scope["headers"],
                                   scope.get("query_string", b""))
        if reason is None:
            return None
        return JSONResponse({"type": "Error", "status": 503,
                             "reason": reason}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.get("/readyz")
    def readyz(self) -> JSONResponse:
        ready = self.warm and not self.drain.draining
        return JSONResponse(
            {"status": "ready" if ready else "not ready",
             "replica": self.name}, status_code=200 if ready else 503)

    @app.get("/metrics")
    def metrics(self) -> Response:
        body = self.pipeline.speech.metrics.exposition()
        return Response(body, media_type=CONTENT_TYPE_LATEST,
                        headers={REPLICA_HEADER: self.name})

    @property
    def warm(self) -> bool:
        return self.pipeline.models[FULL].ready

    def load(self) -> ReplicaLoad:
        pipeline, device = self.pipeline, self.device
        return ReplicaLoad(
            taken_at=time.time(),
            active_streams=len(pipeline.speech.admitted),
            capacity_streams=self.capacity,
            queue_wait_p95_s=pipeline.waits.p95(time.monotonic()),
            free_memory_bytes=device.memory.free_bytes,
            state_bytes_per_stream=device.state_bytes_per_stream,
            max_streams=self.settings.pipeline.max_streams,
            warm=self.warm, draining=self.drain.draining,
            region=self.region, rtt_ms=self.rtt_ms)

    def record_routing_stats(self) -> dict[str, float | int | bool | str]:
        return self.load().to_stats()

    def record_autoscaling_stats(self) -> dict[str, float]:
        load = self.load()
        batcher = self.pipeline.scheduler.batcher
        return {ACTIVE_STREAMS: float(load.active_streams),
                INFLIGHT_AUDIO_S: batcher.queued_audio_s,
                QUEUE_WAIT_P95_S: load.queue_wait_p95_s,
                WARM: 1.0 if load.warm else 0.0}

    def check_health(self) -> None:
        if self.drain.drained.is_set():
            raise RuntimeError("drained after a preemption notice")

    async def watch_notices(self) -> None:
        notices = NoticeFile(Path(self.settings.lab_dir) / self.name,
                             lambda: datetime.now(UTC))
        while not self.drain.draining:
            await asyncio.sleep(NOTICE_POLL_S)
            try:
                notice = notices.poll()
            except NoticeError as error:
                log.warning("event=bad_notice replica=%s error=%s",
                            self.name, error)
                continue
            if notice is not None:
                log.info("event=preempted replica=%s provider=%s"
                         " seconds_left=%.0f", self.name,
                         notice.provider, notice.seconds_left)
                draining = asyncio.create_task(
                    self.drain.drain(notice.seconds_left))
                await asyncio.sleep(0)  # it has begun: say so
                self.write_record(draining=True)
                await draining

    async def __del__(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.drain.drain(0.0)

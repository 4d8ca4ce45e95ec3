"""The pipeline scheduler's faults: each fails one stream, not a batch.

An engine that raises for one request of a batch, a device out of
memory for a batch, a model still loading, a full queue: the stream at
fault gets a clear `DecodeUnavailableError`, the others their results.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from opentelemetry import trace

from ch03_gpu.device import Accelerator
from ch03_gpu.memory import DeviceMemory
from ch03_gpu.profiles import PROFILES
from ch04_streaming.engine import (
    DecodeRequest,
    LocalMatching,
    MockRecognizer,
    Recognizer,
)
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.scheduler import DecodeUnavailableError
from ch04_streaming.transcript import Hypothesis
from ch06_pipeline.cross_stream_batcher import UtteranceTag
from ch06_pipeline.degradation import Level, QueueWaits
from ch06_pipeline.pipeline_scheduler import (
    CHEAPER,
    FULL,
    BatchingConfig,
    BatchRecord,
    PipelineScheduler,
)
from tests.ch06.harness import FakeEngine

TIMEOUT_S = 5.0
MIB = 2**20


def scheduler(models: dict[str, Recognizer], level: Level = Level.NORMAL,
              **config: Any) -> tuple[PipelineScheduler,
                                        list[BatchRecord]]:
    records: list[BatchRecord] = []
    built = PipelineScheduler(
        models, replace(BatchingConfig(max_wait_s=0.05), **config),
        lambda: level, QueueWaits(1.0), trace.NoOpTracer(),
        on_batch=records.append)
    return built, records


async def decode_all(pipeline: PipelineScheduler, sizes: list[int]
                     ) -> list[object]:
    requests = [DecodeRequest(pipeline.new_utterance(0.0),
                              np.zeros(n, np.float32), final=True)
                for n in sizes]
    async with asyncio.timeout(TIMEOUT_S):
        return await asyncio.gather(
            *(pipeline.decode(r) for r in requests),
            return_exceptions=True)


async def test_one_failing_request_fails_only_its_stream() -> None:
    engine = FakeEngine(poison=3)
    pipeline, records = scheduler({FULL: engine})
    pipeline.start()
    outcomes = await decode_all(pipeline, [1, 2, 3, 4, 5, 6, 7, 8])
    await pipeline.close()
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0],
                                           DecodeUnavailableError)
    assert "cannot decode 3 samples" in str(failed[0])
    assert isinstance(outcomes[2], DecodeUnavailableError)
    served = [o.words[0].text for o in outcomes
              if isinstance(o, Hypothesis)]
    assert served == ["1", "2", "4", "5", "6", "7", "8"]
    # One batch of eight, split in halves down to the request at fault.
    assert engine.batches[0] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert len(engine.batches) <= 1 + 2 * 3
    assert records[0].size == 8 and records[0].failed == 1


async def test_a_batch_out_of_device_memory_is_split(
        lexicon: Lexicon) -> None:
    # Room for the activations of 1.5 s of audio at once.
    device = Accelerator(PROFILES["zero"],
                         memory=DeviceMemory(capacity_bytes=1.5 * MIB),
                         activation_bytes_per_audio_s=MIB)
    model = MockRecognizer(LocalMatching(lexicon), device)
    await model.start()
    pipeline, records = scheduler({FULL: model})
    pipeline.start()
    outcomes = await decode_all(pipeline, [16_000] * 4 + [32_000])
    await pipeline.close()
    assert all(not isinstance(o, BaseException) for o in outcomes[:4])
    assert isinstance(outcomes[4], DecodeUnavailableError)  # 2 s alone
    assert str(outcomes[4]).startswith("out of device memory")
    assert records[0].size == 5 and records[0].failed == 1


async def test_a_model_still_loading_is_waited_for_within_a_bound(
) -> None:
    engine = FakeEngine(ready=False)
    pipeline, _ = scheduler({FULL: engine}, ready_wait_s=5.0)
    pipeline.start()
    decoding = asyncio.ensure_future(decode_all(pipeline, [1, 2]))
    async with asyncio.timeout(TIMEOUT_S):
        while not pipeline.batcher._in_flight:
            await asyncio.sleep(0.01)
    await engine.start()  # the cold start ends
    outcomes = await decoding
    await pipeline.close()
    assert [o.words[0].text for o in outcomes
            if isinstance(o, Hypothesis)] == ["1", "2"]


async def test_a_model_that_never_loads_refuses_clearly() -> None:
    engine = FakeEngine(ready=False)
    pipeline, records = scheduler({FULL: engine}, ready_wait_s=0.2)
    pipeline.start()
    outcomes = await decode_all(pipeline, [1, 2])
    await pipeline.close()
    assert all(isinstance(o, DecodeUnavailableError) for o in outcomes)
    assert "model not ready after 0.2 s" in str(outcomes[0])
    assert engine.batches == [] and records[0].failed == 2


async def test_a_full_queue_waits_for_room_then_ends_the_stream() -> None:
    engine = FakeEngine()
    pipeline, _ = scheduler({FULL: engine}, max_queue=1, room_wait_s=0.1)
    first, second = (DecodeRequest(pipeline.new_utterance(0.0),
                                   np.zeros(n, np.float32), final=True)
                     for n in (1, 2))
    # Not started: nothing leaves the queue, which the first fills.
    waiting = asyncio.ensure_future(pipeline.decode(first))
    await asyncio.sleep(0)
    with pytest.raises(DecodeUnavailableError) as refused:
        async with asyncio.timeout(TIMEOUT_S):
            await pipeline.decode(second)
    assert str(refused.value) == ("overloaded: 1 requests queued; retry"
                                  " in 1 s")
    await pipeline.close(grace_s=0)
    with pytest.raises(DecodeUnavailableError, match="shutting down"):
        await waiting


@pytest.mark.parametrize("level, model", [
    (Level.NO_INTERIMS, FULL), (Level.CHEAPER_MODEL, CHEAPER),
    (Level.REJECT_NEW_STREAMS, CHEAPER)])
async def test_new_utterances_get_the_cheaper_model_when_degraded(
        level: Level, model: str) -> None:
    models: dict[str, Recognizer] = {FULL: FakeEngine(),
                                     CHEAPER: FakeEngine()}
    pipeline, _ = scheduler(models, level)
    tag = pipeline.new_utterance(0.0).tag
    assert isinstance(tag, UtteranceTag) and tag.model == model


async def test_a_request_after_shutdown_is_refused_clearly() -> None:
    pipeline, _ = scheduler({FULL: FakeEngine()})
    pipeline.start()
    await pipeline.close()
    request = DecodeRequest(pipeline.new_utterance(0.0),
                            np.zeros(1, np.float32), final=True)
    with pytest.raises(DecodeUnavailableError,
                       match="server shutting down: no more decoding"):
        await pipeline.decode(request)

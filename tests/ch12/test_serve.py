"""`python -m ch12_scaling serve`: replicas on Ray Serve, as an operator
runs it.

One Ray instance and two replicas for the module. Through the Serve
proxy, the official Deepgram SDK hears its fixtures exactly; a replica
given a preemption notice mid-stream delivers its finals, closes with
1001 and the reconnect lands on the other replica; a replica killed
mid-stream ends its stream with an error close and the reconnect lands
on the survivor; SIGTERM stops everything, with no Ray process left.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from deepgram import AsyncDeepgramClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from examples import fleet_client
from examples.fleet_client import finals_until_close, replica_of, send_paced
from examples.service import Service, http_status, running_service
from tests.ch04.deepgram_sdk import environment, exchange
from tests.ch04.harness import reference
from tests.ch04.test_sdks import chunks
from tests.ch12.fleet_harness import ray_processes

KEY = "serve-key"
TIMEOUT_S = 90.0
pytestmark = [pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.timeout(300)]


class Fleet:
    def __init__(self, service: Service, lab: Path) -> None:
        self.service, self.lab = service, lab

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.service.port}"

    def pid_of(self, replica: str) -> int:
        record = json.loads((self.lab / f"{replica}.json").read_text())
        return int(record["pid"])

    def replicas(self) -> set[str]:
        return {p.stem for p in self.lab.glob("*.json")}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fleet() -> AsyncIterator[Fleet]:
    with tempfile.TemporaryDirectory(prefix="ch12-lab-") as lab:
        args = ("-m", "ch12_scaling", "serve", "--port", "0",
                "--replicas", "2", "--lab-dir", lab, "--num-cpus", "2")
        env = {"SPEECH_API_KEYS": KEY, "CH04_LOAD_S": "0",
               "CH04_WARMUP_S": "0"}
        async with running_service(args, env, start_timeout_s=TIMEOUT_S,
                                   stop_timeout_s=60) as service:
            running = Fleet(service, Path(lab))
            await until_warm(running, 2)
            yield running
        assert service.process.returncode == 0
        assert ray_processes() == []


async def until_warm(fleet: Fleet, replicas: int) -> None:
    """Until `replicas` replicas answer streams (warm, routed to)."""
    seen: set[str] = set()
    async with asyncio.timeout(TIMEOUT_S):
        while len(seen) < replicas:
            try:
                async with open_stream(fleet) as socket:
                    seen.add(replica_of(socket))
                    await socket.send(json.dumps({"type": "CloseStream"}))
                    async for _ in socket:
                        pass
            except InvalidStatus as refused:  # 503: a model loading
                assert refused.response.status_code == 503
                await asyncio.sleep(0.2)


def open_stream(fleet: Fleet) -> connect:
    return fleet_client.open_stream(fleet.url, KEY)


async def test_the_deepgram_sdk_hears_fixtures_through_the_proxy(
        fleet: Fleet) -> None:
    http = f"http://127.0.0.1:{fleet.service.port}"

    async def hear(fixture: str) -> str:
        client = AsyncDeepgramClient(
            api_key=KEY, environment=environment(http, fleet.url))
        async with client.listen.v1.connect(
                model="nova-3", encoding="linear16", sample_rate="16000",
                interim_results="true") as connection:
            heard = await exchange(connection, chunks(fixture))
        return heard.transcript

    fixtures = ["quick_brown_fox", "weather_forecast", "card_number"]
    async with asyncio.timeout(TIMEOUT_S):
        heard = await asyncio.gather(*map(hear, fixtures))
    assert heard == [reference(f) for f in fixtures]


async def test_a_refused_key_is_refused_as_the_dialect_refuses_it(
        fleet: Fleet) -> None:
    with pytest.raises(Exception) as refused:
        await connect(f"{fleet.url}/v1/listen",
                      additional_headers={"Authorization": "Token nope"})
    response = refused.value.response  # type: ignore[attr-defined]
    assert response.status_code == 401
    assert response.headers["dg-error"] == "invalid API key"


async def test_a_preempted_replica_finishes_then_hands_over(
        fleet: Fleet) -> None:
    before = fleet.replicas()
    async with asyncio.timeout(TIMEOUT_S), open_stream(fleet) as socket:
        preempted = replica_of(socket)
        sender = asyncio.create_task(send_paced(socket, "support_call"))
        heard = asyncio.create_task(finals_until_close(socket))
        await asyncio.sleep(3.0)  # mid-utterance
        # AWS's answer, 11 s ahead: one second of patience, then the
        # 10 s closing reserve.
        when = datetime.now(UTC) + timedelta(seconds=11)
        (fleet.lab / preempted).write_text(json.dumps(
            {"action": "terminate", "time": when.isoformat()}))
        finals = await heard
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    assert (socket.close_code, socket.close_reason) == (
        1001, "server shutting down")
    assert finals, "the open utterance's final came before the close"
    async with asyncio.timeout(TIMEOUT_S), open_stream(fleet) as again:
        assert replica_of(again) != preempted
        sender = asyncio.create_task(send_paced(again, "quick_brown_fox"))
        assert await finals_until_close(again) == [
            reference("quick_brown_fox")]
        await sender
    await until_replaced(fleet, before)


async def until_replaced(fleet: Fleet, before: set[str]) -> None:
    """Serve starts a replacement once the drained replica fails its
    health check: a replica not seen before, warm."""
    async with asyncio.timeout(TIMEOUT_S):
        while not fleet.replicas() - before:
            await asyncio.sleep(0.5)
    await until_warm(fleet, 2)




async def test_a_killed_replica_cuts_its_stream_and_the_reconnect_lands(
        fleet: Fleet) -> None:
    async with asyncio.timeout(TIMEOUT_S), open_stream(fleet) as socket:
        killed = replica_of(socket)
        sender = asyncio.create_task(send_paced(socket, "support_call"))
        heard = asyncio.create_task(finals_until_close(socket))
        await asyncio.sleep(2.0)
        os.kill(fleet.pid_of(killed), signal.SIGKILL)
        # Serve's proxy drops the connection without a close frame: the
        # client sees an abnormal closure (1006), a drop to recover from.
        with pytest.raises(ConnectionClosedError):
            await heard
        await asyncio.gather(sender, return_exceptions=True)
    assert socket.close_code == 1006
    async with asyncio.timeout(TIMEOUT_S), open_stream(fleet) as again:
        assert replica_of(again) != killed
        sender = asyncio.create_task(send_paced(again, "weather_forecast"))
        assert await finals_until_close(again) == [
            reference("weather_forecast")]
        await sender


async def test_a_replica_that_never_warms_refuses_rather_than_hangs(
) -> None:
    """Its model never loads: every stream is refused at once with a
    reason and `Retry-After`, `/readyz` says not ready, and SIGTERM
    still stops the fleet."""
    with tempfile.TemporaryDirectory(prefix="ch12-cold-") as lab:
        args = ("-m", "ch12_scaling", "serve", "--port", "0",
                "--replicas", "1", "--lab-dir", lab)
        env = {"SPEECH_API_KEYS": KEY, "CH04_LOAD_S": "3600"}
        async with running_service(args, env, start_timeout_s=TIMEOUT_S,
                                   stop_timeout_s=60) as service:
            cold = Fleet(service, Path(lab))
            async with asyncio.timeout(TIMEOUT_S):
                with pytest.raises(InvalidStatus) as refused:
                    await open_stream(cold)
            response = refused.value.response
            assert response.status_code == 503
            assert b"model loading" in response.body
            assert response.headers["Retry-After"] == "1"
            ready = await http_status(
                f"http://127.0.0.1:{service.port}/readyz")
            assert ready == 503
        # Stopped; Ray processes are counted when the module's own
        # fleet, running beside it, has stopped too.
        assert service.process.returncode == 0


async def test_a_burst_during_a_notice_lands_on_the_other_replica(
        fleet: Fleet) -> None:
    """A notice while streams keep arriving: the draining replica takes
    none of them (a stream that reaches it before the routers know is
    refused with 503, and tried again), and its own streams end 1001."""
    await until_warm(fleet, 2)
    async with asyncio.timeout(TIMEOUT_S), open_stream(fleet) as socket:
        preempted = replica_of(socket)
        sender = asyncio.create_task(send_paced(socket, "support_call"))
        heard = asyncio.create_task(finals_until_close(socket))
        when = datetime.now(UTC) + timedelta(seconds=13)
        (fleet.lab / preempted).write_text(json.dumps(
            {"action": "terminate", "time": when.isoformat()}))
        await until_draining(fleet, preempted)
        burst = await asyncio.gather(*(
            landed(fleet, "weather_forecast") for _ in range(6)))
        await heard
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    assert socket.close_code == 1001
    served_by = {replica for replica, _ in burst}
    assert preempted not in served_by
    assert all(said == [reference("weather_forecast")]
               for _, said in burst)


async def landed(fleet: Fleet, fixture: str) -> tuple[str, list[str]]:
    """A stream of `fixture` served to its end, tried again on a 503."""
    while True:
        try:
            async with open_stream(fleet) as socket:
                sender = asyncio.create_task(send_paced(socket, fixture))
                said = await finals_until_close(socket)
                await sender
                return replica_of(socket), said
        except InvalidStatus as refused:
            assert refused.response.status_code == 503
            await asyncio.sleep(0.2)


async def until_draining(fleet: Fleet, replica: str) -> None:
    """Until the replica has read its notice and begun to drain."""
    record = fleet.lab / f"{replica}.json"
    async with asyncio.timeout(TIMEOUT_S):
        while not json.loads(record.read_text())["draining"]:
            await asyncio.sleep(0.1)

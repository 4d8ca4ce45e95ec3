"""Chapter 4's streams behind managed keys, end to end over WebSocket.

A real server in this process checks keys with the `KeyVerifier`,
admits streams through the `StreamGuard` and runs a `KeyWatch`; the
last test adds a second replica on the same database and revokes the
key from the command line, in another process, as an operator would.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ch04_streaming.auth import ApiKeys
from ch04_streaming.client import DIALECTS, load_audio, stream
from ch07_api import database
from ch09_security.key_store import KeyHasher, KeyStore, Scope
from ch09_security.key_verifier import KeyVerifier
from ch09_security.key_watch import KeyWatch, RunningStreams
from ch09_security.keys_cli import now_ms
from ch09_security.stream_guard import StreamGuard
from tests.ch04.harness import Running, Start, audio_of, reference
from tests.ch09.conftest import SECRET

DEV_KEY = "dev-key-from-the-environment"
REVOKED = "credential no longer valid: API key revoked"
REVOCATION_BOUND_S = 2.0  # what the chapter promises


@dataclass
class Secured:
    running: Running
    store: KeyStore
    streams: RunningStreams
    watch: KeyWatch


@asynccontextmanager
async def secured(start_server: Start, url: str) -> AsyncIterator[Secured]:
    store = KeyStore(database.open_engine(url), KeyHasher(SECRET), now_ms)
    store.create_schema()
    verifier = KeyVerifier(store, ApiKeys.of(DEV_KEY))
    streams = RunningStreams()
    watch = KeyWatch(verifier, streams, poll_s=0.1)
    watching = asyncio.create_task(watch.run())
    try:
        async with start_server(key_check=verifier,
                                hooks=StreamGuard(verifier, streams)
                                ) as running:
            yield Secured(running, store, streams, watch)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        store.engine.dispose()


def listen(running: Running, key: str) -> connect:
    return connect(
        f"{running.url}/v1/listen?encoding=linear16&sample_rate=16000",
        additional_headers={"Authorization": f"Token {key}"})


async def speak_then_wait(socket: ClientConnection) -> None:
    """A second of speech, then a client that holds the stream open."""
    payload = load_audio(audio_of("quick_brown_fox")).payload
    await socket.send(payload[:32_000])


async def closed_within(socket: ClientConnection, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        try:
            async for _ in socket:
                pass
        except ConnectionClosed:  # closed with an error code
            pass


async def test_a_managed_key_streams_and_its_use_is_counted(
    start_server: Start, database_url: str,
) -> None:
    async with secured(start_server, database_url) as service:
        made = service.store.create("acme", [Scope.LISTEN])
        report = await stream(service.running.url, DIALECTS["deepgram"],
                              made.key, load_audio(audio_of("weather_"
                                                            "forecast")))
        await service.watch.flush_uses()
        assert report.transcript == reference("weather_forecast")
        assert service.store.show(made.record.key_id).use_count == 1
        assert len(service.streams) == 0  # followed only while it ran


@pytest.mark.parametrize("key, status", [
    ("", 401), ("spk_" + "A" * 36, 401), ("not-a-key", 401),
])
async def test_missing_or_malformed_keys_are_refused(
    start_server: Start, database_url: str, key: str, status: int,
) -> None:
    async with secured(start_server, database_url) as service:
        with pytest.raises(InvalidStatus) as refused:
            async with listen(service.running, key):
                pass
    assert refused.value.response.status_code == status


async def test_a_key_without_the_listen_scope_is_forbidden(
    start_server: Start, database_url: str,
) -> None:
    async with secured(start_server, database_url) as service:
        made = service.store.create("acme", [Scope.USAGE_READ])
        with pytest.raises(InvalidStatus) as refused:
            async with listen(service.running, made.key):
                pass
    assert refused.value.response.status_code == 403
    assert b"lacks the listen scope" in refused.value.response.body


async def test_the_development_key_still_streams(
    start_server: Start, database_url: str,
) -> None:
    async with secured(start_server, database_url) as service:
        report = await stream(service.running.url, DIALECTS["assemblyai"],
                              DEV_KEY, load_audio(audio_of("living_room")))
    assert report.transcript == reference("living_room")


async def test_revoking_a_key_closes_its_stream_and_spares_others(
    start_server: Start, database_url: str,
) -> None:
    async with secured(start_server, database_url) as service:
        doomed = service.store.create("acme")
        kept = service.store.create("globex")
        async with listen(service.running, doomed.key) as victim, \
                listen(service.running, kept.key) as bystander:
            await speak_then_wait(victim)
            await speak_then_wait(bystander)
            service.store.revoke(doomed.record.key_id)
            await closed_within(victim, REVOCATION_BOUND_S)
            assert (victim.close_code, victim.close_reason) == (
                1008, REVOKED)
            await bystander.send('{"type": "CloseStream"}')
            await closed_within(bystander, 10)
            assert bystander.close_code == 1000
        with pytest.raises(InvalidStatus) as refused:
            async with listen(service.running, doomed.key):
                pass
    assert refused.value.response.status_code == 401


async def test_a_key_revoked_by_command_ends_streams_on_every_replica(
    start_server: Start, tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/keys.sqlite3"
    async with secured(start_server, url) as first, \
            secured(start_server, url) as second:
        made = first.store.create("acme")
        async with listen(second.running, made.key) as socket:
            await speak_then_wait(socket)
            revoke = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ch09_security", "keys",
                "--database-url", url, "revoke", made.record.key_id,
                env={**os.environ, "KEY_HASH_SECRET": SECRET.decode()},
                stdout=asyncio.subprocess.PIPE)
            output, _ = await asyncio.wait_for(revoke.communicate(), 60)
            assert revoke.returncode == 0, output
            assert b"revoked" in output
            await closed_within(socket, REVOCATION_BOUND_S)
        assert (socket.close_code, socket.close_reason) == (1008, REVOKED)

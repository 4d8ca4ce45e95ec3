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
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ch04_streaming.client import DIALECTS, load_audio, stream
from ch09_security.key_store import Scope
from tests.ch04.harness import Running, Start, audio_of, reference
from tests.ch09.conftest import SECRET
from tests.ch09.harness import DEV_KEY, secured

REVOKED = "credential no longer valid: API key revoked"
REVOCATION_BOUND_S = 2.0  # what the chapter promises




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
        await service.layer.watch.flush_uses()
        assert report.transcript == reference("weather_forecast")
        assert service.store.show(made.record.key_id).use_count == 1
        assert len(service.layer.guard.streams) == 0  # only while it ran


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

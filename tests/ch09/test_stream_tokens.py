"""Short-lived tokens over the wire, with the providers' own SDKs.

A customer's backend trades its key for a token (Deepgram's grant
through the official SDK; AssemblyAI's temporary token), and a client
streams with the token: in a header, in the subprotocols a browser
sends, or in the URL, which no log line may then show. A single-use
token opens one session; a token's session length ends its stream as
an expired session.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from assemblyai.streaming.v3 import (
    AsyncStreamingClient,
    StreamingClientOptions,
    StreamingEvents,
    StreamingParameters,
    TurnEvent,
)
from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from ch04_streaming.client import DIALECTS, load_audio, stream
from ch09_security.key_store import Scope
from ch09_security.log_redaction import redact_logs
from ch09_security.token_grants import Granted
from tests.ch04.deepgram_sdk import environment, exchange
from tests.ch04.harness import Start, audio_of, reference
from tests.ch04.test_sdks import chunks
from tests.ch09.harness import Secured, secured


def environment_of(service: Secured) -> DeepgramClientEnvironment:
    return environment(service.api, service.running.url)


async def test_deepgram_sdk_grants_a_token_and_streams_with_it(
    start_server: Start, tmp_path: Path,
) -> None:
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db"
                       ) as service, httpx.AsyncClient() as http:
        made = service.store.create("acme", [Scope.LISTEN])
        backend = AsyncDeepgramClient(api_key=made.key, httpx_client=http,
                                      environment=environment_of(service))
        grant = await backend.auth.v1.tokens.grant(ttl_seconds=60)
        assert grant.expires_in == 60
        browser = AsyncDeepgramClient(access_token=grant.access_token,
                                      httpx_client=http,
                                      environment=environment_of(service))
        async with browser.listen.v1.connect(
                model="nova-3", encoding="linear16",
                sample_rate="16000") as connection:
            heard = await exchange(connection, chunks("weather_forecast"))
    assert heard.transcript == reference("weather_forecast")


async def test_grant_refusals_keep_deepgrams_error_shape(
    start_server: Start, tmp_path: Path,
) -> None:
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db"
                       ) as service, httpx.AsyncClient() as http:
        made = service.store.create("acme")
        url = f"{service.api}/v1/auth/grant"
        bad_key = await http.post(url, headers={"Authorization": "Token x"})
        bad_body = await http.post(
            url, content=b"{not json",
            headers={"Authorization": f"Token {made.key}"})
        too_long = await http.post(
            url, json={"ttl_seconds": 7200},
            headers={"Authorization": f"Token {made.key}"})
    assert bad_key.status_code == 401
    assert bad_key.json()["category"] == "INVALID_AUTH"
    assert bad_body.status_code == 400
    assert too_long.json()["message"] == "ttl_seconds must be 1 to 3600"
    assert set(too_long.json()) == {"type", "category", "message",
                                    "request_id"}


async def test_a_browser_streams_with_a_token_in_its_subprotocols(
    start_server: Start, tmp_path: Path,
) -> None:
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db"
                       ) as service:
        made = service.store.create("acme")
        granted = service.layer.grants.deepgram(f"Token {made.key}", 60)
        assert isinstance(granted, Granted)
        url = f"{service.running.url}/v1/listen?encoding=linear16"
        offered = [Subprotocol("bearer"), Subprotocol(granted.token)]
        async with connect(url, subprotocols=offered) as socket:
            assert socket.subprotocol == "bearer"  # never the token
            await socket.send(load_audio(audio_of("living_room")).payload)
            await socket.send('{"type": "CloseStream"}')
            async with asyncio.timeout(30):
                messages = [m async for m in socket]
    assert any("living room" in str(m) for m in messages)


async def test_an_assemblyai_token_opens_one_session_and_is_never_logged(
    start_server: Start, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    redact_logs()  # as `python -m ch09_security` does, on every handler
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db"
                       ) as service, httpx.AsyncClient() as http:
        made = service.store.create("acme")
        answer = await http.get(
            f"{service.running.http}/v3/token",
            params={"expires_in_seconds": 60},
            headers={"Authorization": made.key})
        assert answer.status_code == 200
        token = answer.json()["token"]
        turns: list[TurnEvent] = []

        def on_turn(_client: Any, event: TurnEvent) -> None:
            turns.append(event)

        client = AsyncStreamingClient(StreamingClientOptions(
            token=token, api_host=service.running.url))
        client.on(StreamingEvents.Turn, on_turn)
        async with asyncio.timeout(30):
            await client.connect(StreamingParameters.model_validate(
                {"sample_rate": 16_000}))
            await client.stream(chunks("call_back"))
            await client.disconnect(terminate=True)
        url = f"{service.running.url}/v3/ws?sample_rate=16000&token={token}"
        with pytest.raises(InvalidStatus) as again:
            async with connect(url):
                pass
    ends = [t.transcript for t in turns if t.end_of_turn]
    assert " ".join(ends) == reference("call_back")
    assert again.value.response.status_code == 401
    assert b"already used" in again.value.response.body
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "token=[REDACTED]" in logged  # the URL was logged, masked
    assert token.split(".")[2] not in logged


async def test_a_tokens_session_length_ends_its_stream_as_expired(
    start_server: Start, tmp_path: Path,
) -> None:
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db"
                       ) as service:
        record = service.store.create("acme").record
        token = service.layer.grants.issuer.issue(
            record, [Scope.LISTEN], 60, single_use=True, max_session_s=0)
        url = f"{service.running.url}/v3/ws?sample_rate=16000&token={token}"
        async with connect(url) as socket:
            await socket.send(load_audio(audio_of("quick_brown_fox")
                                         ).payload[:16_000])
            async with asyncio.timeout(5):
                try:
                    async for _ in socket:
                        pass
                except ConnectionClosed:
                    pass
    assert socket.close_code == 3008  # AssemblyAI's session expired


async def test_an_expired_grant_opens_no_stream(
    start_server: Start, tmp_path: Path,
) -> None:
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db"
                       ) as service:
        record = service.store.create("acme").record
        token = service.layer.grants.issuer.issue(record, [Scope.LISTEN],
                                                  -10)
        report_error: InvalidStatus | None = None
        try:
            await stream(service.running.url, DIALECTS["deepgram"], token,
                         load_audio(audio_of("quick_brown_fox")))
        except InvalidStatus as error:
            report_error = error
    assert report_error is not None
    assert report_error.response.status_code == 401

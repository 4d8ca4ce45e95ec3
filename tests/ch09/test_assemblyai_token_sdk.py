"""AssemblyAI's SDK asks for a temporary token and streams with it.

The SDK's token call goes to `https://HOST/v3/token` on the host it
streams to (`wss://HOST/v3/ws`): it takes no plain-HTTP base, so this
runs over TLS, with the test run's CA trusted through `SSL_CERT_FILE`,
as any OpenSSL client is pointed at a private CA.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from assemblyai.streaming.v3 import (
    AsyncStreamingClient,
    StreamingClientOptions,
    StreamingEvents,
    StreamingParameters,
    TurnEvent,
)

from ch09_security.key_store import Scope
from ch09_security.tls import server_context
from tests.ch04.harness import Start, reference
from tests.ch04.test_sdks import chunks
from tests.ch09.harness import secured
from tests.ch09.tls_harness import make_pki


async def test_the_sdk_creates_a_temporary_token_and_streams_on_it(
    start_server: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pki = make_pki(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db",
                       ssl=server_context(pki.server)) as service:
        host = f"127.0.0.1:{service.running.server.port}"
        made = service.store.create("acme", [Scope.LISTEN])
        backend = AsyncStreamingClient(StreamingClientOptions(
            api_key=made.key, api_host=host))
        token = await backend.create_temporary_token(
            expires_in_seconds=60, max_session_duration_seconds=600)
        await backend.disconnect()
        turns: list[TurnEvent] = []

        def on_turn(_client: Any, event: TurnEvent) -> None:
            turns.append(event)

        browser = AsyncStreamingClient(StreamingClientOptions(
            token=token, api_host=host))
        browser.on(StreamingEvents.Turn, on_turn)
        async with asyncio.timeout(30):
            await browser.connect(StreamingParameters.model_validate(
                {"sample_rate": 16_000}))
            await browser.stream(chunks("call_back"))
            await browser.disconnect(terminate=True)
        claims = service.layer.credentials.check(token).token
    ends = [t.transcript for t in turns if t.end_of_turn]
    assert " ".join(ends) == reference("call_back")
    assert claims is not None and claims.single_use
    assert claims.max_session_s == 600

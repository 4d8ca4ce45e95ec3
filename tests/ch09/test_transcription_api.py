"""Chapter 7's API behind chapter 9's credentials: scope on every route.

OpenAI's own SDK transcribes through this chapter's HTTP API with an
OAuth2 access token whose scope includes `transcribe`; a token without
it is refused 403 `insufficient_scope`, and no credential 401, before
chapter 7 sees the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import httpx2
import openai
import pytest

from ch04_streaming.auth import ApiKeys
from ch07_api.app import Parts, create_app
from ch09_security.http_api import create_http_app
from ch09_security.key_store import KeyStore, Scope
from ch09_security.security_layer import SecurityLayer, security_layer
from tests.ch07.aip_harness import fast_settings, fixture_bytes, fixture_text


@pytest.fixture
def layer(store: KeyStore) -> Iterator[SecurityLayer]:
    yield security_layer(store, ApiKeys(()))


@asynccontextmanager
async def api(layer: SecurityLayer, tmp_path: Path
              ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx2.AsyncClient]]:
    transcription = create_app(fast_settings(tmp_path),
                               Parts(keys=layer.credentials))
    app = create_http_app(layer, transcription)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api",
            timeout=30) as client, httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app)) as sdk_http:
        async with asyncio.timeout(30):
            while (await client.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.01)
        yield client, sdk_http


async def access_token(client: httpx.AsyncClient, key_id: str, key: str,
                       scope: str) -> str:
    answer = await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "scope": scope},
        auth=(key_id, key))
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def sdk(http: httpx2.AsyncClient, token: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://api/v1", api_key=token,
                              http_client=http, max_retries=0)


async def test_openai_sdk_transcribes_with_a_scoped_access_token(
    layer: SecurityLayer, store: KeyStore, tmp_path: Path,
) -> None:
    made = store.create("acme", [Scope.LISTEN, Scope.TRANSCRIBE])
    async with api(layer, tmp_path) as (client, http):
        token = await access_token(client, made.record.key_id, made.key,
                                   "transcribe")
        result = await sdk(http, token).audio.transcriptions.create(
            model="mock-asr", file=("fox.wav",
                                    fixture_bytes("quick_brown_fox"),
                                    "audio/wav"))
    assert result.text == fixture_text("quick_brown_fox")


async def test_a_token_without_the_scope_is_refused_403(
    layer: SecurityLayer, store: KeyStore, tmp_path: Path,
) -> None:
    made = store.create("acme", [Scope.LISTEN, Scope.TRANSCRIBE])
    async with api(layer, tmp_path) as (client, http):
        token = await access_token(client, made.record.key_id, made.key,
                                   "listen")
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await sdk(http, token).models.list()
        anonymous = await client.get("/v1/models")
        forged = await client.get(
            "/v1/models", headers={"Authorization": "Bearer eyJ.eyJ.x"})
    assert refused.value.status_code == 403
    assert 'error="insufficient_scope"' in (
        refused.value.response.headers["www-authenticate"])
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_token"
    assert forged.status_code == 401


async def test_probes_and_credential_routes_stay_reachable(
    layer: SecurityLayer, store: KeyStore, tmp_path: Path,
) -> None:
    async with api(layer, tmp_path) as (client, _):
        ready = await client.get("/readyz")
        jwks = await client.get("/.well-known/jwks.json")
    assert ready.status_code == 200
    assert jwks.json()["keys"][0]["alg"] == "EdDSA"

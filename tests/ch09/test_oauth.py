"""OAuth2 client credentials, with a standard client library (Authlib).

A machine client fetches an access token from `POST /oauth/token` as
any OAuth2 client would, and streams with it; the token carries the
scopes it asked for, and every refusal is RFC 6749's error document.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from ch04_streaming.client import DIALECTS, load_audio, stream
from ch09_security.key_store import Scope
from ch09_security.tokens import AUDIENCE
from tests.ch04.harness import Start, audio_of, reference
from tests.ch09.harness import secured


async def test_a_client_library_fetches_a_token_that_streams(
    start_server: Start, tmp_path: Path,
) -> None:
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db"
                       ) as service:
        made = service.store.create("acme", [Scope.LISTEN,
                                             Scope.TRANSCRIBE])
        async with AsyncOAuth2Client(made.record.key_id, made.key,
                                     scope="listen") as client:
            token = await client.fetch_token(
                f"{service.api}/oauth/token",
                grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "listen" and token["expires_in"] == 3600
        claims = jwt.decode(token["access_token"],
                            options={"verify_signature": False})
        assert claims["aud"] == AUDIENCE
        assert claims["client_id"] == made.record.key_id
        report = await stream(service.running.url, DIALECTS["deepgram"],
                              token["access_token"],
                              load_audio(audio_of("quick_brown_fox")))
    assert report.transcript == reference("quick_brown_fox")


async def test_a_token_without_the_listen_scope_opens_no_stream(
    start_server: Start, tmp_path: Path,
) -> None:
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db"
                       ) as service:
        made = service.store.create("acme", [Scope.LISTEN,
                                             Scope.USAGE_READ])
        async with AsyncOAuth2Client(made.record.key_id, made.key,
                                     scope="usage:read") as client:
            token = await client.fetch_token(
                f"{service.api}/oauth/token",
                grant_type="client_credentials")
        async with httpx.AsyncClient() as http:
            refused = await http.get(
                f"{service.running.http}/v1/listen",
                headers={"Authorization": f"Bearer {token['access_token']}",
                         "Connection": "Upgrade", "Upgrade": "websocket",
                         "Sec-WebSocket-Version": "13",
                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert refused.status_code == 403
    assert "lacks the listen scope" in refused.text


@pytest.mark.parametrize("form, secret_ok, status, error", [
    ({"grant_type": "password"}, True, 400, "unsupported_grant_type"),
    ({"grant_type": "client_credentials"}, False, 401, "invalid_client"),
    ({"grant_type": "client_credentials", "scope": "keys:admin"}, True,
     400, "invalid_scope"),
])
async def test_refusals_are_rfc_6749_errors(
    start_server: Start, tmp_path: Path, form: dict[str, str],
    secret_ok: bool, status: int, error: str,
) -> None:
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db"
                       ) as service, httpx.AsyncClient() as http:
        made = service.store.create("acme", [Scope.LISTEN])
        secret = made.key if secret_ok else made.key[:-1] + "x"
        answer = await http.post(f"{service.api}/oauth/token", data=form,
                                 auth=(made.record.key_id, secret))
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert answer.headers["cache-control"] == "no-store"
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Basic")


async def test_authlib_reports_a_wrong_secret(start_server: Start,
                                              tmp_path: Path) -> None:
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db"
                       ) as service:
        made = service.store.create("acme")
        other = service.store.create("globex")
        async with AsyncOAuth2Client(made.record.key_id,
                                     other.key) as client:
            with pytest.raises(OAuthError) as refused:
                await client.fetch_token(f"{service.api}/oauth/token",
                                         grant_type="client_credentials")
    assert refused.value.error == "invalid_client"


async def test_a_json_body_or_a_token_as_secret_is_refused(
    start_server: Start, tmp_path: Path,
) -> None:
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db"
                       ) as service, httpx.AsyncClient() as http:
        made = service.store.create("acme")
        url = f"{service.api}/oauth/token"
        as_json = await http.post(url, json={
            "grant_type": "client_credentials"},
            auth=(made.record.key_id, made.key))
        good = await http.post(url, data={
            "grant_type": "client_credentials"},
            auth=(made.record.key_id, made.key))
        token = good.json()["access_token"]
        with_token = await http.post(url, data={
            "grant_type": "client_credentials"},
            auth=(made.record.key_id, token))
    assert (as_json.status_code, as_json.json()["error"]) == (
        400, "invalid_request")
    assert with_token.json()["error"] == "invalid_client"

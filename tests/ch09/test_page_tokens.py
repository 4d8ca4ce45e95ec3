"""The browser page streams on a short-lived token, in real Chromium.

Chapter 4's page, served by chapter 9's service with page tokens on,
holds no key: it fetches a 60 s token from its own origin and opens
the WebSocket with the subprotocols `bearer, TOKEN`. Revoking the key
the tokens are minted under stops new ones; a request from another
site gets none.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ch09_security.grant_routes import PAGE_TOKEN_PATH
from tests.ch04.harness import MANIFEST, Start, audio_of
from tests.ch04.test_browser import WAIT_MS, chromium_page, texts
from tests.ch09.harness import secured


async def test_the_page_streams_with_a_token_it_fetched(
    start_server: Start, tmp_path: Path,
) -> None:
    fixture = MANIFEST.get("quick_brown_fox")
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db",
                       page_owner="acme") as service, chromium_page(
            audio_of("quick_brown_fox")) as page:
        await page.goto(f"{service.running.http}/")  # no ?key=
        await page.click("#start")
        await page.wait_for_function(
            "n => document.querySelectorAll('#finals .final').length >= n",
            arg=len(fixture.utterances), timeout=WAIT_MS)
        kind = await page.evaluate("window.credentialKind")
        await page.click("#stop")
        finals = await texts(page, "#finals .text")
    assert kind == "bearer"
    assert finals == [u.text for u in fixture.utterances]


async def test_page_tokens_only_for_this_origin_and_while_the_key_lives(
    start_server: Start, tmp_path: Path,
) -> None:
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db",
                       page_owner="acme") as service, \
            httpx.AsyncClient() as http:
        url = f"{service.running.http}{PAGE_TOKEN_PATH}"
        same = await http.get(url, headers={"Sec-Fetch-Site": "same-origin"})
        cross = await http.get(url, headers={"Sec-Fetch-Site": "cross-site"})
        [record] = service.store.owned("acme")
        service.store.revoke(record.key_id)
        service.layer.credentials.keys.forget(record.digest)
        after = await http.get(url, headers={"Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 200 and same.json()["expires_in"] == 60
    assert cross.status_code == 403
    assert after.status_code == 503
    assert "revoked" in after.json()["reason"]


async def test_without_page_tokens_the_page_asks_for_a_key(
    start_server: Start, tmp_path: Path,
) -> None:
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db"
                       ) as service, chromium_page() as page:
        await page.goto(f"{service.running.http}/")
        await page.click("#start")
        await page.wait_for_function(
            "() => document.querySelector('#status').textContent"
            " === 'enter an API key first'", timeout=WAIT_MS)


@pytest.mark.parametrize("dialect", ["deepgram", "assemblyai", "openai"])
async def test_every_dialect_of_the_page_streams_on_a_page_token(
    start_server: Start, tmp_path: Path, dialect: str,
) -> None:
    # Each dialect carries the token its own way: subprotocols, or
    # AssemblyAI's ?token=; none of them holds a long-lived key.
    fixture = MANIFEST.get("weather_forecast")
    async with secured(start_server, f"sqlite:///{tmp_path}/k.db",
                       page_owner="acme") as service, chromium_page(
            ) as page:
        await page.goto(f"{service.running.http}/?dialect={dialect}"
                        "&source=weather_forecast")
        await page.wait_for_selector("#start:enabled")
        await page.click("#start")
        await page.wait_for_function(
            "() => document.querySelector('#status').textContent"
            ".startsWith('closed')", timeout=WAIT_MS)
        kind = await page.evaluate("window.credentialKind")
        finals = await texts(page, "#finals .text")
        status = await page.text_content("#status")
    assert kind == "bearer"
    assert finals == [u.text for u in fixture.utterances]
    assert status == "closed: 1000 normal close"

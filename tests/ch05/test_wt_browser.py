"""WebTransport from a real browser: headless Chromium, datagrams in.

Chapter 5, "WebTransport: QUIC datagrams". A page (served by the test
through Playwright's routing, at an http://127.0.0.1 origin, which
browsers count as secure) opens `new WebTransport(url,
{serverCertificateHashes})` with the hash of the certificate the
server made for the run, sends a fixture's audio as datagrams at the
pace of speech and reads the results stream: the reference text comes
back. Chromium needs no flag for this: no CA, no
`--origin-to-force-quic-on`, and chapter 4's `--disable-quic` does not
stop WebTransport.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import Page
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ch04_streaming.client import load_pcm
from ch04_streaming.mock_matcher import Lexicon
from ch05_protocols.wt_client import RATE, final_text, frames_of
from ch05_protocols.wt_frames import FRAME_MS, frame_bytes
from tests.ch04.harness import KEY, MANIFEST, audio_of, reference
from tests.ch04.test_browser import chromium_page
from tests.ch05.wt_harness import RunningWt, running_wt_server

FIXTURE = "quick_brown_fox_24k"

# Open a session, send `datagrams` (base64) at one frame per 20 ms, end
# the input, read every message of the results stream to its end, then
# close the session.
SESSION = """async ({url, hash, datagrams, paceMs}) => {
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transport = new WebTransport(url, {serverCertificateHashes: [
    {algorithm: "sha-256", value: bytes(hash)}]});
  await transport.ready;
  const incoming = transport.incomingUnidirectionalStreams.getReader();
  const results = (async () => {
    const {value: stream} = await incoming.read();
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    const messages = [];
    let text = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return messages;
      const lines = (text + value).split("\\n");
      text = lines.pop();
      for (const line of lines.filter((l) => l)) {
        messages.push({at: performance.now(), message: JSON.parse(line)});
      }
    }
  })();
  const events = await transport.createBidirectionalStream();
  const writer = transport.datagrams.writable.getWriter();
  const sentAt = [];
  const start = performance.now();
  for (const [i, datagram] of datagrams.entries()) {
    await writer.write(bytes(datagram));
    sentAt.push(performance.now());
    const due = start + (i + 1) * paceMs;
    await new Promise((r) => setTimeout(r, due - performance.now()));
  }
  await events.writable.close();
  const messages = await results;
  transport.close({closeCode: 0, reason: "read to the end"});
  const closed = await transport.closed;
  return {messages, sentAt, closeCode: closed.closeCode,
          reason: closed.reason,
          maxDatagramSize: transport.datagrams.maxDatagramSize};
}"""

REFUSED = """async ({url, hash}) => {
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transport = new WebTransport(url, {serverCertificateHashes: [
    {algorithm: "sha-256", value: bytes(hash)}]});
  try {
    await transport.ready;
    return "opened";
  } catch (error) {
    return `${error.name}: ${error.source}`;
  }
}"""


def datagram(seq: int, payload: bytes) -> str:
    return base64.b64encode(seq.to_bytes(4, "big") + payload).decode()


@asynccontextmanager
async def page_origin() -> AsyncIterator[str]:
    """An http://127.0.0.1 origin serving an empty page. (Playwright's
    own routing would do, but with it on Chromium's WebTransport
    handshake fails.)"""
    async def page(connection: ServerConnection,
                   request: Request) -> Response:
        body = b"<!doctype html><title>WebTransport</title>"
        return Response(200, "OK", Headers({
            "Content-Type": "text/html", "Content-Length": str(len(body))
        }), body)

    async with serve(lambda _: asyncio.sleep(0), "127.0.0.1", 0,
                     process_request=page) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}/"


async def run_session(page: Page, wt: RunningWt,
                      datagrams: list[str]) -> dict[str, Any]:
    session: dict[str, Any] = await page.evaluate(SESSION, {
        "url": f"{wt.url}?key={KEY}&audio=datagram",
        "hash": wt.certificate.sha256_base64,
        "datagrams": datagrams, "paceMs": FRAME_MS})
    return session


def finals(session: dict[str, Any]) -> list[tuple[float, str]]:
    """Each final transcript, and when the page had it (ms)."""
    return [(m["at"], text) for m in session["messages"]
            if (text := final_text(m["message"]))]


async def test_chromium_streams_datagrams_and_reads_the_reference_text(
    lexicon: Lexicon,
) -> None:
    frames = frames_of(load_pcm(audio_of(FIXTURE), RATE))
    async with running_wt_server(lexicon) as wt, page_origin() as origin, \
            chromium_page() as page:
        await page.goto(origin)
        session = await run_session(
            page, wt, [datagram(i, f) for i, f in enumerate(frames)])
    heard = finals(session)
    assert " ".join(text for _, text in heard) == reference(FIXTURE)
    closed = session["messages"][-1]["message"]
    assert closed["type"] == "webtransport.closed"
    assert closed["audio"]["frames"] == len(frames)
    assert (closed["code"], closed["reason"]) == (1000, "")
    assert (session["closeCode"], session["reason"]) == (
        0, "read to the end")
    # What Chromium says a datagram may carry, less its own headers.
    assert 1_000 < session["maxDatagramSize"] < 1_500
    spoken = MANIFEST.get(FIXTURE).utterances
    for (at, _), utterance in zip(heard, spoken, strict=True):
        # From the datagram holding the utterance's last sound: the
        # endpointer waits for 300 ms of silence after it.
        last = math.ceil(utterance.end * 1000 / FRAME_MS) - 1
        assert 300 <= at - session["sentAt"][last] < 1_000


async def test_chromium_gets_an_error_event_for_a_bad_datagram(
    lexicon: Lexicon,
) -> None:
    size = frame_bytes(24_000)
    async with running_wt_server(lexicon) as wt, page_origin() as origin, \
            chromium_page() as page:
        await page.goto(origin)
        session = await run_session(page, wt, [
            base64.b64encode(b"\0\0").decode(),  # shorter than a header
            datagram(0, bytes(size)), datagram(1, bytes(size)),
            datagram(2, bytes(4_000)),  # over maxDatagramSize: dropped
            datagram(2, bytes(size))])
    types = [m["message"]["type"] for m in session["messages"]]
    errors = [m["message"]["error"] for m in session["messages"]
              if m["message"]["type"] == "error"]
    assert [e["code"] for e in errors] == ["datagram_too_short"]
    assert types[-1] == "webtransport.closed"
    audio = session["messages"][-1]["message"]["audio"]
    # Chromium drops the oversized datagram itself, without a word: the
    # page has to check `maxDatagramSize` before it writes.
    assert (audio["frames"], audio["errors"]) == (3, 1)


async def test_chromium_cannot_open_a_session_with_a_wrong_key(
    lexicon: Lexicon,
) -> None:
    async with running_wt_server(lexicon) as wt, page_origin() as origin, \
            chromium_page() as page:
        await page.goto(origin)
        outcome = await page.evaluate(REFUSED, {
            "url": f"{wt.url}?key=not-{KEY}",
            "hash": wt.certificate.sha256_base64})
        handlers = len(wt.server.handlers)
    # The 401 and its JSON reach the page only as a failed handshake.
    assert outcome == "WebTransportError: session"
    assert handlers == 0

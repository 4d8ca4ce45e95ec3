"""Redaction end to end: chapter 4's server with its dialects wrapped.

The server is chapter 4's, in this process, with both dialects wrapped
by `redacting_dialects`, passed where a server takes its dialects. The
fixtures say a number: `card_number` "four one one one two two two two"
and `call_back` "five five five zero one nine nine". Every text field
of every message, interim or final, is searched for the spoken digits'
words and for their digits; streamed without redaction, they are there.

Sent as fast as the server takes it, a fixture gets few interims (the
session coalesces what queued up while it decoded), so the interims
are also checked one chunk at a time: each chunk goes into the session
core and is decoded before the next, the mock engine's words growing
one at a time, and every event goes through the wrapped dialect's
stream into its messages.

`redact=pci` leaves `card_number`'s final as it was said: eight digits
are too few for a card (13 to 19), and 41112222 fails the Luhn check
anyway. Its interims hide them all the same: no interim can know that.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.app import dialects, session_factory
from ch04_streaming.client import chunk_bounds, load_audio
from ch04_streaming.dialects.dialect import Dialect, StreamDefaults
from ch04_streaming.engine import LocalMatching, MockRecognizer, load_lexicon
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.scheduler import DirectScheduler
from ch04_streaming.session import SessionEvent
from ch04_streaming.stream_handler import ConnectionLimits
from ch09_security.redacting_dialect import redacting_dialects
from examples.fixtures import MANIFEST_PATH
from examples.realtime_sdk import pcm24k
from tests.ch04.harness import KEY, Running, audio_of, running_server

Message = dict[str, object]
TEXT_FIELDS = {"transcript", "word", "punctuated_word", "text", "delta"}
SECRETS = {  # the words that say the digits, and the first four digits
    "card_number": ({"four", "one", "two"}, "4111"),
    "call_back": ({"five", "zero", "one", "nine"}, "5550"),
}
DEEPGRAM = "/v1/listen?encoding=linear16&sample_rate=16000" \
    "&interim_results=true"
ASSEMBLYAI = "/v3/ws?encoding=pcm_s16le&sample_rate=16000"


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return load_lexicon(MANIFEST_PATH)


@asynccontextmanager
async def redacting_server(lexicon: Lexicon) -> AsyncIterator[Running]:
    async with running_server(
        lexicon, dialects_by_path=redacting_dialects(dialects()),
    ) as running:
        yield running


async def streamed(running: Running, target: str,
                   fixture_id: str) -> list[Message]:
    """Every message of a stream of `fixture_id`, sent in 100 ms chunks
    (as fast as the server takes them), then closed."""
    deepgram = target.startswith("/v1/listen")
    auth = f"Token {KEY}" if deepgram else KEY
    close = "CloseStream" if deepgram else "Terminate"
    payload = load_audio(audio_of(fixture_id)).payload
    async with connect(running.url + target,
                       additional_headers={"Authorization": auth}) as ws:
        for start, end in chunk_bounds(len(payload), 3200, 1600):
            await ws.send(payload[start:end])
        await ws.send(json.dumps({"type": close}))
        return [json.loads(raw) async for raw in ws]


async def chunk_by_chunk(lexicon: Lexicon, dialect: Dialect,
                         query: dict[str, str],
                         fixture_id: str) -> list[Message]:
    """The messages of a stream whose every chunk is decoded before the
    next arrives: an interim for each, as the words grow."""
    recognizer = MockRecognizer(LocalMatching(lexicon),
                                Accelerator(PROFILES["zero"]))
    await recognizer.start()
    request = dialect.parse(query, StreamDefaults())
    stream = dialect.open_stream(request)
    messages: list[Message] = []

    def emit(event: SessionEvent) -> None:
        messages.extend(json.loads(m.to_json())
                        for m in stream.encode(event))

    new_session = session_factory(DirectScheduler(recognizer),
                                  ConnectionLimits())
    session = new_session(request, emit)
    decoding = asyncio.create_task(session.run())
    payload = load_audio(audio_of(fixture_id)).payload
    try:
        for start, end in chunk_bounds(len(payload), 3200, 1600):
            session.accept_audio(payload[start:end])
            async with asyncio.timeout(5):
                await session.drained()
        session.finalize()
        async with asyncio.timeout(5):
            await session.drained()
    finally:
        decoding.cancel()
        await recognizer.stop()
    return messages


def texts(message: object) -> list[str]:
    """The text fields of a message, at any depth."""
    if isinstance(message, dict):
        return [text for name, value in message.items()
                for text in ([value] if name in TEXT_FIELDS
                             and isinstance(value, str) else texts(value))]
    if isinstance(message, list):
        return [text for value in message for text in texts(value)]
    return []


def leaks(messages: list[Message], fixture_id: str) -> list[str]:
    """Text fields that show a spoken digit's word or the digits."""
    words, digits = SECRETS[fixture_id]
    said = re.compile(rf"\b({'|'.join(words)})\b", re.IGNORECASE)
    return [text for message in messages for text in texts(message)
            if said.search(text) or digits in text]


def results(messages: list[Message], final: bool) -> list[Message]:
    return [m for m in messages
            if (m["type"] == "Results" and m["is_final"] is final)
            or (m["type"] == "Turn" and m["end_of_turn"] is final)]


def transcripts(messages: list[Message], final: bool) -> list[str]:
    """Each result's transcript (a Turn's, or a Results' first
    alternative's), empty ones left out."""
    return [text for m in results(messages, final)
            for text in texts(m)[:1] if text]


@pytest.mark.parametrize(("fixture_id", "redact", "label"), [
    ("card_number", "numbers", "[NUMBER_1]"),
    ("call_back", "numbers", "[NUMBER_1]"),
    ("call_back", "pii", "[PHONE_NUMBER_1]"),
    ("card_number", "pci,numbers", "[NUMBER_1]"),
    ("call_back", "pci,pii", "[PHONE_NUMBER_1]"),
])
async def test_deepgram_shows_no_digit_in_any_message(
    lexicon: Lexicon, fixture_id: str, redact: str, label: str,
) -> None:
    async with redacting_server(lexicon) as running:
        messages = await streamed(running, f"{DEEPGRAM}&redact={redact}",
                                  fixture_id)
    assert results(messages, final=False), "interims were asked for"
    assert leaks(messages, fixture_id) == []
    (final,) = transcripts(messages, final=True)
    assert final.endswith(label)


@pytest.mark.parametrize("fixture_id", ["card_number", "call_back"])
async def test_without_redaction_the_digits_are_on_the_wire(
    lexicon: Lexicon, fixture_id: str,
) -> None:
    async with redacting_server(lexicon) as running:
        deepgram = await streamed(running, DEEPGRAM, fixture_id)
        assemblyai = await streamed(running, ASSEMBLYAI, fixture_id)
    for messages in (deepgram, assemblyai):
        assert leaks(results(messages, final=True), fixture_id)


async def realtime_streamed(running: Running, query: str,
                            fixture_id: str) -> list[Message]:
    """Every event of an OpenAI realtime stream of `fixture_id`, up to
    the transcript its commit completes."""
    pcm = pcm24k(audio_of(fixture_id))
    target = f"{running.url}/v1/realtime?intent=transcription{query}"
    messages: list[Message] = []
    async with connect(target, additional_headers={
            "Authorization": f"Bearer {KEY}"}) as ws:
        for start in range(0, len(pcm), 4800):
            await ws.send(json.dumps({
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(pcm[start:start + 4800]).decode()}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        async with asyncio.timeout(30):
            while not str(messages[-1:] and messages[-1]["type"]).endswith(
                    "completed"):
                messages.append(json.loads(await ws.recv()))
    return messages


@pytest.mark.parametrize(("fixture_id", "redact", "label"), [
    ("card_number", "numbers", "[NUMBER_1]"),
    ("call_back", "pii", "[PHONE_NUMBER_1]"),
])
async def test_the_openai_dialect_takes_deepgrams_redact_parameter(
    lexicon: Lexicon, fixture_id: str, redact: str, label: str,
) -> None:
    """OpenAI has no redaction parameter: its path takes Deepgram's."""
    async with redacting_server(lexicon) as running:
        plain = await realtime_streamed(running, "", fixture_id)
        redacted = await realtime_streamed(running, f"&redact={redact}",
                                           fixture_id)
    assert leaks(plain, fixture_id)
    assert leaks(redacted, fixture_id) == []
    assert str(redacted[-1]["transcript"]).endswith(label)


WRAPPED = redacting_dialects(dialects())
CHUNKED = [  # dialect, its redaction query, fixture
    ("/v1/listen", {"redact": "numbers"}, "card_number"),
    ("/v1/listen", {"redact": "pii"}, "call_back"),
    ("/v1/listen", {"redact": "pci"}, "card_number"),
    ("/v3/ws", {"redact_pii": "true", "include_partial_turns": "true"},
     "call_back"),
    ("/v3/ws", {"redact_pii": "true", "include_partial_turns": "true"},
     "card_number"),
]


@pytest.mark.parametrize(("path", "query", "fixture_id"), CHUNKED)
async def test_no_interim_shows_a_digit_as_the_words_grow(
    lexicon: Lexicon, path: str, query: dict[str, str], fixture_id: str,
) -> None:
    dialect = WRAPPED[path]
    asked = {"interim_results": "true", **query}
    messages = await chunk_by_chunk(lexicon, dialect, asked, fixture_id)
    interims = results(messages, final=False)
    hiding = [m for m in interims
              if any("#" in t or "[REDACTED]" in t for t in texts(m))]
    assert len(hiding) >= 5, "an interim for each digit's chunks"
    assert leaks(interims, fixture_id) == []
    plain = await chunk_by_chunk(lexicon, dialect, {"interim_results":
                                                    "true"}, fixture_id)
    assert leaks(results(plain, final=False), fixture_id)


async def test_pci_shows_a_number_that_is_no_card_only_when_final(
    lexicon: Lexicon,
) -> None:
    async with redacting_server(lexicon) as running:
        messages = await streamed(running, f"{DEEPGRAM}&redact=pci",
                                  "card_number")
    assert leaks(results(messages, final=False), "card_number") == []
    assert transcripts(messages, final=True) == [
        "my card number is four one one one two two two two"]


async def test_assemblyai_hashes_a_phone_number_in_every_turn(
    lexicon: Lexicon,
) -> None:
    query = ("&redact_pii=true&redact_pii_policies=phone_number"
             "&include_partial_turns=true")
    async with redacting_server(lexicon) as running:
        messages = await streamed(running, ASSEMBLYAI + query, "call_back")
    assert results(messages, final=False), "partial turns were asked for"
    assert leaks(messages, "call_back") == []
    assert transcripts(messages, final=True) == [
        "call me back at # # # # # # #"]


async def test_assemblyai_sends_only_final_turns_while_redacting(
    lexicon: Lexicon,
) -> None:
    query = "&redact_pii=true&redact_pii_sub=entity_name&format_turns=true"
    async with redacting_server(lexicon) as running:
        messages = await streamed(running, ASSEMBLYAI + query, "call_back")
    assert results(messages, final=False) == []
    assert leaks(messages, "call_back") == []
    assert transcripts(messages, final=True) == [
        "call me back at [PHONE_NUMBER]", "Call me back at [PHONE_NUMBER]."]


async def test_assemblyai_policies_leave_a_number_that_is_no_pii(
    lexicon: Lexicon,
) -> None:
    query = "&redact_pii=true&include_partial_turns=true"
    async with redacting_server(lexicon) as running:
        messages = await streamed(running, ASSEMBLYAI + query, "card_number")
    assert leaks(results(messages, final=False), "card_number") == []
    assert transcripts(messages, final=True) == [
        "my card number is four one one one two two two two"]


@pytest.mark.parametrize(("target", "reason"), [
    (f"{DEEPGRAM}&redact=phi", "redact='phi' is not supported"),
    (f"{ASSEMBLYAI}&redact_pii=true&redact_pii_policies=person_name",
     "redact_pii_policies: supported are"),
    (f"{ASSEMBLYAI}&redact_pii_sub=hash", "need redact_pii=true"),
])
async def test_redaction_the_server_cannot_do_is_refused_with_400(
    lexicon: Lexicon, target: str, reason: str,
) -> None:
    auth = f"Token {KEY}" if target.startswith("/v1") else KEY
    async with redacting_server(lexicon) as running:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(running.url + target,
                               additional_headers={"Authorization": auth}):
                pass
        served = await streamed(running, DEEPGRAM, "call_back")
    response = refused.value.response
    assert response.status_code == 400
    assert reason in json.loads(response.body.decode())["reason"]
    assert transcripts(served, final=True)  # and serves everyone else

"""The AIP-styled routes: transcripts as resources, operations for long
audio, pages with signed tokens, v1 beside v2, google.rpc.Status errors.

Each test drives the app in-process with the mock engine, through the
public HTTP surface only, and checks what a client of Google-style APIs
relies on: resource names, the shape of each version, an operation's
progress and its single end, and a clear status for every refusal.
"""

from __future__ import annotations

import asyncio
import base64
import io
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf

from ch04_streaming.auth import ApiKeys
from ch07_api.app import Parts
from tests.ch07.aip_harness import (
    KEY,
    audio_body,
    fast_settings,
    fixture_bytes,
    fixture_text,
    serving,
    until_done,
)
from tests.ch07.fakes import SteeredRecognizer

FOX = "quick_brown_fox"
LONG = "support_call"  # 44 s: over the long-running threshold


def rpc_error(answer: httpx.Response, status: int, name: str
              ) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == status and error["status"] == name
    assert error["message"]
    assert error["details"][0]["@type"].endswith("google.rpc.ErrorInfo")
    return error


async def test_short_audio_is_answered_with_the_transcript_itself(
        tmp_path: Path) -> None:
    async with serving(fast_settings(tmp_path)) as client:
        answer = await client.post("/v1/transcripts", json=audio_body(FOX))
        assert answer.status_code == 200, answer.text
        transcript = answer.json()
        assert transcript["name"].startswith("transcripts/")
        assert transcript["text"] == fixture_text(FOX)
        assert transcript["model"] == "mock-asr-2026-01"
        assert answer.headers["openai-model"] == "mock-asr-2026-01"
        first = transcript["segments"][0]["words"][0]
        assert isinstance(first["start_seconds"], float)
        again = await client.get(f"/v1/{transcript['name']}")
        assert again.json() == transcript


async def test_v2_changes_times_to_durations_and_v1_says_it_is_retiring(
        tmp_path: Path) -> None:
    async with serving(fast_settings(tmp_path)) as client:
        v1 = await client.post("/v1/transcripts", json=audio_body(FOX))
        v2 = await client.post("/v2/transcripts", json=audio_body(FOX))
        word_v1 = v1.json()["segments"][0]["words"][0]
        word_v2 = v2.json()["segments"][0]["words"][0]
        assert set(word_v1) == {"word", "start_seconds", "end_seconds",
                                "confidence"}
        assert set(word_v2) == {"word", "start_offset", "end_offset",
                                "confidence"}
        assert word_v2["start_offset"] == f"{word_v1['start_seconds']:.3f}s"
        assert v2.json()["duration"].endswith("s")
        # RFC 9745 and RFC 8594, and where to go instead
        assert v1.headers["deprecation"].startswith("@")
        sunset = parsedate_to_datetime(v1.headers["sunset"])
        assert sunset.year == 2027
        assert v1.headers["link"] == ('</v2/transcripts>;'
                                      ' rel="successor-version"')
        assert "deprecation" not in v2.headers
        # the same resource, read through either version
        name = v2.json()["name"]
        read_v1 = await client.get(f"/v1/{name}")
        assert read_v1.json()["text"] == v2.json()["text"]


async def test_long_audio_becomes_an_operation_that_reports_progress(
        tmp_path: Path) -> None:
    settings = fast_settings(tmp_path, lro_speed=40.0)
    async with serving(settings) as client:
        answer = await client.post("/v2/transcripts",
                                   json=audio_body(LONG))
        assert answer.status_code == 200, answer.text
        operation = answer.json()
        assert operation["name"].startswith("operations/")
        assert operation["done"] is False
        metadata = operation["metadata"]
        assert metadata["@type"].endswith("v2.TranscribeMetadata")
        assert metadata["state"] == "RUNNING"
        seen = await until_done(client, operation["name"], "v2")
        progress = [s["metadata"]["progress_percent"] for s in seen]
        assert progress == sorted(progress) and progress[-1] == 100
        assert any(0 < p < 100 for p in progress), progress
        done = seen[-1]
        assert done["metadata"]["state"] == "SUCCEEDED"
        assert "error" not in done
        response = done["response"]
        assert response["@type"].endswith("v2.Transcript")
        assert response["name"] == metadata["transcript"]
        assert response["text"] == fixture_text(LONG)
        stored = await client.get(f"/v2/{response['name']}")
        assert stored.json()["text"] == fixture_text(LONG)


async def test_cancel_ends_a_running_operation_once(tmp_path: Path) -> None:
    # Fed at real time, the 44 s call is still running when cancelled.
    async with serving(fast_settings(tmp_path, lro_speed=1.0)) as client:
        started = await client.post("/v1/transcripts",
                                    json=audio_body(LONG))
        name = started.json()["name"]
        running = await client.delete(f"/v1/{name}")
        rpc_error(running, 400, "FAILED_PRECONDITION")
        cancelled = await client.post(f"/v1/{name}:cancel")
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()
        assert body["done"] is True
        assert body["metadata"]["state"] == "CANCELLED"
        assert body["error"]["code"] == 1  # google.rpc.Code.CANCELLED
        assert "response" not in body
        again = await client.post(f"/v1/{name}:cancel")
        error = rpc_error(again, 400, "FAILED_PRECONDITION")
        assert "done already" in error["message"]
        transcript = body["metadata"]["transcript"]
        rpc_error(await client.get(f"/v1/{transcript}"), 404, "NOT_FOUND")
        assert (await client.delete(f"/v1/{name}")).json() == {}
        rpc_error(await client.get(f"/v1/{name}"), 404, "NOT_FOUND")
        rpc_error(await client.post("/v1/operations/nope:cancel"), 404,
                  "NOT_FOUND")


async def test_finished_operation_cannot_be_cancelled(
        tmp_path: Path) -> None:
    async with serving(fast_settings(tmp_path, lro_speed=0.0)) as client:
        started = await client.post("/v1/transcripts",
                                    json=audio_body(LONG))
        name = started.json()["name"]
        await until_done(client, name)
        error = rpc_error(await client.post(f"/v1/{name}:cancel"), 400,
                          "FAILED_PRECONDITION")
        assert "succeeded" in error["message"]


async def test_lists_page_through_everything_with_signed_tokens(
        tmp_path: Path) -> None:
    async with serving(fast_settings(tmp_path)) as client:
        created = []
        for number in range(5):
            answer = await client.post(
                f"/v1/transcripts?transcript_id=fox-{number}",
                json=audio_body(FOX))
            created.append(answer.json()["name"])
        names, token, pages = [], "", 0
        while True:
            page = await client.get("/v1/transcripts", params={
                "page_size": 2, "page_token": token})
            assert page.status_code == 200, page.text
            names += [t["name"] for t in page.json()["transcripts"]]
            token, pages = page.json()["next_page_token"], pages + 1
            if not token:
                break
            assert "fox" not in base64.urlsafe_b64decode(token + "==")[
                :32].decode("latin-1")  # the signature leads
        assert names == created and pages == 3
        everything = await client.get("/v1/transcripts",
                                      params={"page_size": 5000})
        assert len(everything.json()["transcripts"]) == 5


async def test_page_tokens_cannot_be_forged_or_reused_elsewhere(
        tmp_path: Path) -> None:
    async with serving(fast_settings(tmp_path)) as client:
        for _ in range(3):
            await client.post("/v1/transcripts", json=audio_body(FOX))
        first = await client.get("/v1/transcripts", params={"page_size": 1})
        token = first.json()["next_page_token"]
        raw = bytearray(base64.urlsafe_b64decode(token + "=="))
        raw[-2] ^= 0x01  # move the position by one bit
        forged = base64.urlsafe_b64encode(bytes(raw)).decode()
        for bad in (forged, token[:-3], "not-a-token", token + "x"):
            answer = await client.get("/v1/transcripts",
                                      params={"page_token": bad})
            error = rpc_error(answer, 400, "INVALID_ARGUMENT")
            assert error["details"][0]["metadata"]["field"] == "page_token"
        elsewhere = await client.get("/v1/operations",
                                     params={"page_token": token})
        rpc_error(elsewhere, 400, "INVALID_ARGUMENT")
        negative = await client.get("/v1/transcripts",
                                    params={"page_size": -1})
        rpc_error(negative, 400, "INVALID_ARGUMENT")


async def test_client_chosen_ids_are_checked_and_unique(
        tmp_path: Path) -> None:
    async with serving(fast_settings(tmp_path)) as client:
        url = "/v2/transcripts?transcript_id=meeting-1"
        assert (await client.post(url, json=audio_body(FOX))).is_success
        rpc_error(await client.post(url, json=audio_body(FOX)), 409,
                  "ALREADY_EXISTS")
        bad = await client.post("/v2/transcripts?transcript_id=Bad_Id",
                                json=audio_body(FOX))
        rpc_error(bad, 400, "INVALID_ARGUMENT")


def clip_wav(fixture_id: str, seconds: float) -> bytes:
    samples, rate = sf.read(io.BytesIO(fixture_bytes(fixture_id)),
                            dtype="float32")
    out = io.BytesIO()
    sf.write(out, np.asarray(samples[:int(rate * seconds)]), rate,
             format="WAV")
    return out.getvalue()


async def test_the_decision_picks_stream_sync_or_operation(
        tmp_path: Path) -> None:
    stream = {"Accept": "text/event-stream"}
    async with serving(fast_settings(tmp_path, lro_speed=0.0)) as client:
        streamed = await client.post("/v1/transcripts", headers=stream,
                                     json=audio_body(FOX))
        assert streamed.headers["content-type"].startswith(
            "text/event-stream")
        events = [line for line in streamed.text.splitlines()
                  if line.startswith("data: ")]
        assert '"response.created"' in events[0]
        assert '"response.completed"' in events[-1]
        assert streamed.headers["cache-control"] == "no-cache"
        listed = await client.get("/v1/transcripts")
        assert listed.json()["transcripts"][0]["text"] == fixture_text(FOX)
        short = base64.b64encode(clip_wav(FOX, 0.5)).decode()
        tiny = await client.post("/v1/transcripts", headers=stream,
                                 json={"audio": {"content": short}})
        assert tiny.headers["content-type"] == "application/json"
        assert tiny.json()["name"].startswith("transcripts/")
        long = await client.post("/v1/transcripts", headers=stream,
                                 json=audio_body(LONG))
        assert long.json()["name"].startswith("operations/")


async def test_bad_requests_get_a_status_that_names_the_field(
        tmp_path: Path) -> None:
    async with serving(fast_settings(tmp_path)) as client:
        not_json = await client.post("/v1/transcripts", content=b"x",
                                     headers={"Content-Type":
                                              "audio/wav"})
        rpc_error(not_json, 415, "INVALID_ARGUMENT")
        broken = await client.post(
            "/v1/transcripts", content=b"{not json",
            headers={"Content-Type": "application/json"})
        rpc_error(broken, 400, "INVALID_ARGUMENT")
        unknown = await client.post("/v1/transcripts",
                                    json=audio_body(FOX, speed=2))
        error = rpc_error(unknown, 400, "INVALID_ARGUMENT")
        assert error["details"][0]["metadata"]["field"] == "speed"
        bad64 = await client.post("/v1/transcripts",
                                  json={"audio": {"content": "@@@"}})
        error = rpc_error(bad64, 400, "INVALID_ARGUMENT")
        assert error["details"][0]["metadata"]["field"] == "audio.content"
        noise = base64.b64encode(b"RIFF\x00\x00not audio").decode()
        unreadable = await client.post("/v1/transcripts",
                                       json={"audio": {"content": noise}})
        error = rpc_error(unreadable, 400, "INVALID_ARGUMENT")
        assert error["details"][0]["reason"] == "INVALID_AUDIO"
        model = await client.post("/v1/transcripts",
                                  json=audio_body(FOX, model="nope"))
        rpc_error(model, 404, "NOT_FOUND")
        # an old model is served by /v1 only
        old = await client.post("/v2/transcripts", json=audio_body(
            FOX, model="mock-asr-2025-06"))
        assert "/v1" in rpc_error(old, 404, "NOT_FOUND")["message"]
        assert (await client.post("/v1/transcripts", json=audio_body(
            FOX, model="mock-asr-2025-06"))).is_success
        language = await client.post("/v1/transcripts",
                                     json=audio_body(FOX,
                                                     language_code="fr"))
        rpc_error(language, 400, "INVALID_ARGUMENT")
        keyless = await client.get("/v1/transcripts",
                                   headers={"Authorization": ""})
        rpc_error(keyless, 401, "UNAUTHENTICATED")
        missing = await client.get("/v2/transcripts/nope")
        rpc_error(missing, 404, "NOT_FOUND")
        good = await client.post("/v1/transcripts", json=audio_body(FOX))
        assert good.json()["text"] == fixture_text(FOX)


async def test_an_operation_the_engine_fails_ends_failed_with_its_status(
        tmp_path: Path) -> None:
    engine = SteeredRecognizer(fail_final=1)
    parts = Parts(keys=ApiKeys.of(KEY), models={"full": engine})
    async with serving(fast_settings(tmp_path, lro_speed=0.0),
                       parts) as client:
        started = await client.post("/v1/transcripts",
                                    json=audio_body(LONG))
        done = (await until_done(client, started.json()["name"]))[-1]
        assert done["metadata"]["state"] == "FAILED"
        assert done["error"]["code"] == 14  # UNAVAILABLE
        assert done["error"]["details"][0]["reason"] == "SERVER_UNAVAILABLE"
        assert "response" not in done


async def test_too_many_pending_operations_is_429(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path, lro_speed=1.0,
                             max_pending_operations=1)
    async with serving(settings) as client:
        first = await client.post("/v1/transcripts", json=audio_body(LONG))
        assert first.json()["done"] is False
        second = await client.post("/v1/transcripts",
                                   json=audio_body(LONG))
        rpc_error(second, 429, "RESOURCE_EXHAUSTED")
        assert second.headers["retry-after"] == "1"


async def test_a_stream_the_queue_cannot_take_is_429_not_a_200(
        tmp_path: Path) -> None:
    gate = asyncio.Event()
    engine = SteeredRecognizer(gate=gate)
    parts = Parts(keys=ApiKeys.of(KEY), models={"full": engine})
    settings = fast_settings(tmp_path, max_active=1, max_waiting=0)
    async with serving(settings, parts) as client:
        held = asyncio.create_task(client.post(
            "/v1/transcripts", json=audio_body(FOX)))
        async with asyncio.timeout(20):
            await engine.decoding.wait()
        streamed = await client.post(
            "/v1/transcripts", json=audio_body(FOX),
            headers={"Accept": "text/event-stream"})
        rpc_error(streamed, 429, "RESOURCE_EXHAUSTED")
        gate.set()
        async with asyncio.timeout(20):
            assert (await held).status_code == 200

"""`POST /v1/usage/events`: per-event answers, bad input, busy ledger."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from ch04_streaming.auth import ApiKeys
from ch08_metering.ledger import Ledger
from ch08_metering.metering import SOURCE
from tests.ch08.delivery_harness import Ledgers, write_lock
from tests.ch08.ingest_harness import (
    AUTH,
    JSON,
    KEY,
    NOW,
    ingest_client,
    raw_event,
)


@pytest.fixture
async def client(ledger: Ledger) -> AsyncIterator[httpx.AsyncClient]:
    async with ingest_client(ledger) as client:
        yield client


async def post(client: httpx.AsyncClient, body: object) -> httpx.Response:
    return await client.post("/v1/usage/events", json=body, headers=AUTH)


async def test_one_event_is_accepted_then_a_duplicate(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    first = await post(client, raw_event(1))
    assert first.status_code == 202
    [result] = first.json()["results"]
    assert result == {"id": "stream-1", "status": "accepted",
                      "accepted_at": NOW.isoformat()}
    again = (await post(client, raw_event(1))).json()["results"]
    assert again == [{**result, "status": "duplicate"}]
    assert ledger.totals() == {("acme", "audio_ms", ("diarization",)):
                               1500}


async def test_a_batch_answers_each_event_in_order(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    batch = [
        raw_event(1),
        raw_event(2, time=(NOW + timedelta(minutes=6)).isoformat()),
        raw_event(3, time=(NOW - timedelta(days=36)).isoformat()),
        raw_event(4, value=-5),
        raw_event(5, value=1.5),
        raw_event(6, subject="nobody"),
        raw_event(7, meter="minutes"),
        raw_event(8, unexpected=True),
        "not an event",
        raw_event(1),
        raw_event(9, time=(NOW + timedelta(minutes=4)).isoformat()),
    ]
    response = await post(client, batch)
    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["status"] for r in results] == [
        "accepted", "rejected", "rejected", "rejected", "rejected",
        "rejected", "rejected", "rejected", "rejected", "duplicate",
        "accepted"]
    reasons = [r.get("reason", "") for r in results]
    assert "future" in reasons[1]
    assert "35 days" in reasons[2]
    assert reasons[3].startswith("data.value")
    assert reasons[4].startswith("data.value")
    assert "unknown customer" in reasons[5]
    assert reasons[6].startswith("data.meter")
    assert reasons[7].startswith("unexpected")
    assert results[8]["id"] is None
    assert sum(ledger.totals().values()) == 3000


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b"{not json", 400, "not valid JSON"),
    (b"[]", 400, "empty batch"),
    (json.dumps([raw_event(n) for n in range(101)]).encode(), 400,
     "at most 100"),
    (b" " * (1024 * 1024 + 1), 413, "bytes"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
])
async def test_bad_bodies_are_refused_whole(
        client: httpx.AsyncClient, ledger: Ledger, body: bytes,
        status: int, reason: str) -> None:
    response = await client.post("/v1/usage/events", content=body,
                                 headers={**AUTH, **JSON})
    assert response.status_code == status
    assert response.json()["type"] == "Error"
    assert reason in response.json()["reason"]
    assert ledger.totals() == {}


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
async def test_a_missing_or_wrong_key_is_401(
        client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.post("/v1/usage/events", json=raw_event(1),
                                 headers=headers)
    assert response.status_code == 401
    assert response.json()["reason"] == "missing or invalid API key"


async def test_a_customers_key_reports_only_its_own_usage(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    response = await client.post(
        "/v1/usage/events", json=[raw_event(1), raw_event(2, subject="demo")],
        headers={"Authorization": "Bearer acme-key"})
    own, other = response.json()["results"]
    assert (own["status"], other["status"]) == ("accepted", "rejected")
    assert other["reason"] == (
        "a key of 'acme' cannot report another customer's usage")
    assert ledger.totals() == {("acme", "audio_ms", ("diarization",)):
                               1500}


async def test_a_key_without_a_billing_account_is_403(
        client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/usage/events", json=raw_event(1),
        headers={"Authorization": "Bearer orphan-key"})
    assert response.status_code == 403
    assert response.json()["reason"] == "no billing account for this API key"


async def test_a_batch_of_100_is_accepted(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    response = await post(client, [raw_event(n) for n in range(100)])
    statuses = {r["status"] for r in response.json()["results"]}
    assert (response.status_code, statuses) == (202, {"accepted"})
    assert sum(ledger.totals().values()) == 150_000


async def test_a_busy_ledger_is_503_and_the_retry_counts_once(
        tmp_path: Path, ledgers: Ledgers) -> None:
    path = tmp_path / "l.sqlite3"
    ledger = ledgers.at(f"sqlite:///{path}", busy_timeout_s=0.1)
    async with ingest_client(ledger, ApiKeys(())) as client:
        with write_lock(path):
            busy = await post(client, [raw_event(1), raw_event(2)])
        retry = await post(client, [raw_event(1), raw_event(2)])
    assert (busy.status_code, busy.headers["retry-after"]) == (503, "1")
    assert [r["status"] for r in retry.json()["results"]] == [
        "accepted", "accepted"]
    assert sum(ledger.totals().values()) == 3000


async def test_metrics_count_outcomes(client: httpx.AsyncClient) -> None:
    await post(client, [raw_event(1), raw_event(1), raw_event(2, value=-1)])
    text = (await client.get("/metrics")).text
    for status in ("accepted", "duplicate", "rejected"):
        assert f'usage_events_total{{status="{status}"}} 1.0' in text
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_values_past_their_meters_bound_are_rejected_one_by_one(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    """Two events of 2^63-1 would overflow the customer's sum, and
    10^30 the column itself: each is refused alone, with the bound,
    and the valid events of the same batch are kept."""
    batch = [
        raw_event(1, value=2**63 - 1),
        raw_event(2, value=2**63 - 1),
        raw_event(3, value=10**30),
        raw_event(4, value=86_400_000),  # a day of audio: the bound
        raw_event(5, value=86_400_001),
        raw_event(6, meter="tokens", value=10**9),
        raw_event(7, meter="tokens", value=10**9 + 1),
    ]
    response = await post(client, batch)
    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["status"] for r in results] == [
        "rejected", "rejected", "rejected", "accepted", "rejected",
        "accepted", "rejected"]
    assert "over the audio_ms meter's bound of 86400000" in (
        results[0]["reason"])
    assert ledger.totals() == {
        ("acme", "audio_ms", ("diarization",)): 86_400_000,
        ("acme", "tokens", ("diarization",)): 10**9}


@pytest.mark.parametrize(("meter", "bound"), [
    ("compute_ms", 86_400_000), ("api_calls", 1_000_000)])
async def test_compute_time_and_api_calls_are_bounded_too(
        client: httpx.AsyncClient, ledger: Ledger, meter: str,
        bound: int) -> None:
    response = await post(client, [
        raw_event(1, meter=meter, value=bound, features=[]),
        raw_event(2, meter=meter, value=bound + 1, features=[])])
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert f"over the {meter} meter's bound of {bound}" in (
        results[1]["reason"])
    assert ledger.totals() == {("acme", meter, ()): bound}


@pytest.mark.parametrize(("content_type", "status"), [
    ("text/plain", 415), ("application/x-www-form-urlencoded", 415),
    ("", 415), ("application/json; charset=utf-8", 202),
    ("application/cloudevents-batch+json", 202)])
async def test_only_json_bodies_are_read(
        client: httpx.AsyncClient, content_type: str, status: int) -> None:
    response = await client.post(
        "/v1/usage/events", content=json.dumps([raw_event(1)]).encode(),
        headers={**AUTH, "Content-Type": content_type})
    assert response.status_code == status


async def test_an_oversized_body_is_refused_before_it_is_all_read(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    """No Content-Length, 64 KiB at a time: the server stops reading
    at its 1 MiB limit instead of holding the whole body first."""
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):  # 6.4 MiB on offer
            sent += 1
            yield b" " * 65_536

    response = await client.post("/v1/usage/events", content=body(),
                                 headers={**AUTH, **JSON})
    assert response.status_code == 413
    assert sent <= 1024 * 1024 // 65_536 + 1
    assert ledger.totals() == {}


async def test_a_customers_ids_cannot_claim_or_probe_anothers(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    """acme's key uses the (source, id) of demo's events: demo's usage
    is still billed, and acme learns nothing of demo's ids."""
    acme = {"Authorization": "Bearer acme-key"}
    claim = raw_event(1, source="urn:tts", value=0)
    await client.post("/v1/usage/events", json=claim, headers=acme)
    demos = [raw_event(1, source="urn:tts", subject="demo"),
             raw_event(2, source="urn:tts", subject="demo")]
    [real, _] = (await post(client, demos)).json()["results"]
    probe = raw_event(2, source="urn:tts", value=7)
    [answer] = (await client.post("/v1/usage/events", json=probe,
                                  headers=acme)).json()["results"]
    assert (real["status"], answer["status"]) == ("accepted", "accepted")
    assert ledger.totals() == {
        ("acme", "audio_ms", ("diarization",)): 7,
        ("demo", "audio_ms", ("diarization",)): 3000}


async def test_only_service_keys_report_under_the_services_own_sources(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    """A customer could otherwise send `{stream}-1` first, with a value
    of 0, and its real stream would never be billed."""
    streamed = raw_event(1, source=SOURCE)
    response = await client.post(
        "/v1/usage/events", json=[streamed, raw_event(2)],
        headers={"Authorization": "Bearer acme-key"})
    reserved, own = response.json()["results"]
    assert (reserved["status"], own["status"]) == ("rejected", "accepted")
    assert reserved["reason"] == (
        f"source {SOURCE!r} is the service's own: only a service key"
        " may report under it")
    [served] = (await post(client, streamed)).json()["results"]
    assert served["status"] == "accepted"
    assert sum(ledger.totals().values()) == 3000


@pytest.mark.parametrize(("changes", "reason"), [
    ({"id": "stream-\x00"}, "id: Value error, U+0000 at 7 is a control"),
    ({"id": "line\nbreak"}, "id: Value error, U+000A at 4 is a control"),
    ({"source": "te\x1bst"}, "source: Value error, U+001B at 2 is a"),
    ({"subject": "acme\x7f"}, "subject: Value error, U+007F at 4 is a"),
    ({"stream_id": "s\x85"}, "data.stream_id: Value error, U+0085 at 1"),
    ({"id": "half-\ud800"}, "id: Input should be a valid string"),
])
async def test_control_characters_reject_their_event_alone(
        client: httpx.AsyncClient, ledger: Ledger,
        changes: dict[str, str], reason: str) -> None:
    """PostgreSQL refuses NUL in text and SQLite keeps it; a lone
    surrogate has no UTF-8 at all: the event is refused at the edge,
    on both, without its id, and the rest of its batch is kept."""
    bad = raw_event(2, **changes)
    body = json.dumps([raw_event(1), bad, raw_event(3)])  # \u escapes
    response = await client.post("/v1/usage/events", content=body,
                                 headers={**AUTH, **JSON})
    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["status"] for r in results] == [
        "accepted", "rejected", "accepted"]
    assert results[1]["id"] == (None if "id" in changes else "stream-2")
    assert results[1]["reason"].startswith(reason)
    assert ledger.totals() == {("acme", "audio_ms", ("diarization",)):
                               3000}

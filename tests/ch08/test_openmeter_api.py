"""`POST /api/v1/events`: OpenMeter's ingest contract on our ledger.

Every request these tests send, and every answer they get, is checked
against OpenMeter's published OpenAPI document (the excerpt in
`openmeter_openapi_ingest.json`), except the requests sent wrong on
purpose; the last tests show that the check fails where it should.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from ch04_streaming.auth import ApiKeys
from ch08_metering.events import EVENT_TYPE
from ch08_metering.ledger import Ledger
from ch08_metering.openmeter import METER_OF_TYPE, OPENMETER_PATH
from tests.ch08.delivery_harness import Ledgers, write_lock
from tests.ch08.ingest_harness import (
    AUTH,
    NOW,
    ingest_client,
    raw_event,
)

ONE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
PROBLEM = "application/problem+json"


def nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema says it."""
    if isinstance(node, list):
        return [nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {name: nullable(value) for name, value in node.items()
              if name != "nullable"}
    if node.get("nullable") is True:
        if "type" in schema:
            schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


DOCUMENT = json.loads((Path(__file__).parent
                       / "openmeter_openapi_ingest.json").read_text())
SPEC = nullable(DOCUMENT)
OPERATION = SPEC["paths"][OPENMETER_PATH]["post"]
FORMATS = jsonschema.FormatChecker()
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


def rfc3339_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the type check speaks for other types
    return datetime.fromisoformat(value).tzinfo is not None


def absolute_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(SCHEME.fullmatch(value))


def uri_reference(value: object) -> bool:
    return not isinstance(value, str) or not re.search(r"\s", value)


FORMATS.checks("date-time", raises=ValueError)(rfc3339_time)
FORMATS.checks("uri")(absolute_uri)
FORMATS.checks("uri-reference")(uri_reference)


def problems(document: object, schema: dict[str, Any]) -> list[str]:
    """How a document breaks a schema of the OpenAPI document, whose
    references resolve against the whole document."""
    validator = jsonschema.Draft4Validator(
        {**schema, "components": SPEC["components"]},
        format_checker=FORMATS)
    return [f"{list(e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(document)]


def request_problems(body: bytes, content_type: str) -> list[str]:
    content = OPERATION["requestBody"]["content"]
    if content_type not in content:
        return [f"{content_type} is not a documented request body"]
    return problems(json.loads(body), content[content_type]["schema"])


def answer_problems(response: httpx.Response) -> list[str]:
    """How an answer breaks the document: a status it does not list
    falls to its `default` answer, a problem as any other."""
    documented = OPERATION["responses"]
    answer = documented.get(str(response.status_code),
                            documented["default"])
    if "content" not in answer:
        return [] if response.content == b"" else [
            f"{response.status_code} has a body; none is documented"]
    given = response.headers.get("content-type", "")
    if given not in answer["content"]:
        return [f"{response.status_code} answered as {given!r}"]
    return problems(response.json(), answer["content"][given]["schema"])


def openmeter_event(n: int, kind: str = "transcription", *,
                    value: object = 1500,
                    **changes: object) -> dict[str, object]:
    """An event as OpenMeter's clients send one: the type says what
    happened, `data` how much."""
    event: dict[str, object] = {
        "specversion": "1.0", "id": f"call-{n}", "source": "contact-centre",
        "type": kind, "subject": "acme", "time": NOW.isoformat(),
        "data": {"value": value}}
    return {**event, **changes}


@pytest.fixture
async def client(ledger: Ledger) -> AsyncIterator[httpx.AsyncClient]:
    async with ingest_client(ledger) as client:
        yield client


async def send(client: httpx.AsyncClient, body: object,
               content_type: str = BATCH, *,
               headers: dict[str, str] | None = None,
               documented: bool = True) -> httpx.Response:
    """POST to OpenMeter's path; the request (if `documented`) and the
    answer are checked against OpenMeter's document."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    if documented:
        assert request_problems(content, content_type) == []
    response = await client.post(
        OPENMETER_PATH, content=content,
        headers={"Content-Type": content_type,
                 **(AUTH if headers is None else headers)})
    assert answer_problems(response) == []
    return response


def refused(response: httpx.Response) -> list[dict[str, object]]:
    """The events a 400 names as refused, each with why."""
    assert response.status_code == 400, response.text
    rejected: list[dict[str, object]] = (
        response.json()["extensions"]["rejected"])
    return rejected


async def test_one_event_is_recorded_and_its_retry_counts_once(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    first = await send(client, openmeter_event(1), ONE)
    again = await send(client, openmeter_event(1), ONE)
    assert (first.status_code, first.content) == (204, b"")
    assert (again.status_code, again.content) == (204, b"")
    assert ledger.totals() == {("acme", "audio_ms", ()): 1500}
    assert ledger.event_count() == 1


async def test_a_batch_is_recorded_and_its_retry_counts_once(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    batch = [openmeter_event(1),
             openmeter_event(2, "speech_synthesis", value=900),
             openmeter_event(3, "prompt", value=2500),
             raw_event(4),  # our own type, as it is
             openmeter_event(1)]  # repeated within the batch
    assert (await send(client, batch)).status_code == 204
    assert (await send(client, batch[1:3])).status_code == 204  # a retry
    assert ledger.totals() == {("acme", "audio_ms", ()): 1500,
                               ("acme", "characters", ()): 900,
                               ("acme", "tokens", ()): 2500,
                               ("acme", "audio_ms", ("diarization",)): 1500}
    assert ledger.event_count() == 4


async def test_application_json_carries_one_event_or_a_batch(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    one = await send(client, openmeter_event(1), "application/json")
    many = await send(client, [openmeter_event(2), openmeter_event(3)],
                      "application/json")
    assert (one.status_code, many.status_code) == (204, 204)
    assert ledger.totals() == {("acme", "audio_ms", ()): 4500}


async def test_an_event_is_the_same_event_under_either_type(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    """`transcription` with `data.value` is our own event of meter
    `audio_ms`: sent both ways, it is one event."""
    ours = raw_event(1, id="call-1", source="contact-centre", features=[],
                     stream_id=None)
    assert (await send(client, ours, ONE)).status_code == 204
    assert (await send(client, openmeter_event(1), ONE)).status_code == 204
    assert ledger.event_count() == 1


async def test_optional_attributes_may_be_null(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    event = openmeter_event(1, datacontenttype=None, dataschema=None)
    assert (await send(client, event, ONE)).status_code == 204
    assert ledger.totals() == {("acme", "audio_ms", ()): 1500}


@pytest.mark.parametrize(("bad", "reason"), [
    (openmeter_event(2, "api-calls"), "type: 'api-calls' is not an event"
     " type metered here; known: com.speechapi.usage.v1, prompt,"
     " speech_synthesis, transcription"),
    ({k: v for k, v in openmeter_event(2).items() if k != "type"},
     "type: must be an event type metered here"),
    (openmeter_event(2, value=-5), "data.value: Input should be greater"),
    (openmeter_event(2, value="1500"), "data.value: Input should be a"
     " valid integer"),
    (openmeter_event(2, value=86_400_001), "data: Value error, value"
     " 86400001 is over the audio_ms meter's bound"),
    (openmeter_event(2, data={"value": 1, "meter": "tokens"}),
     "data.meter: type 'transcription' names the meter (audio_ms)"),
    (openmeter_event(2, data={"tokens": 1}), "data.value: Field required"),
    (openmeter_event(2, data=None), "data: Field required"),
    (openmeter_event(2, time=None), "time: Field required"),
    (openmeter_event(2, time=(NOW + timedelta(minutes=6)).isoformat()),
     "event time is more than 5 minutes ahead"),
    (openmeter_event(2, subject="nobody"), "unknown customer 'nobody'"),
    (openmeter_event(2, dataschema="https://example.com/s"),
     "dataschema: Extra inputs are not permitted"),
])
async def test_a_bad_event_refuses_its_whole_request(
        client: httpx.AsyncClient, ledger: Ledger,
        bad: dict[str, object], reason: str) -> None:
    """OpenMeter's 400: the request is not processed, so the good
    events beside the bad one are not recorded either. OpenMeter's
    document allows each of these requests but the one without a
    `type`."""
    response = await send(client, [openmeter_event(1), bad],
                          documented="type" in bad)
    [rejected] = refused(response)
    assert rejected["index"] == 1
    assert rejected["id"] == bad.get("id")
    assert str(rejected["reason"]).startswith(reason), rejected["reason"]
    assert response.json()["detail"] == (
        "1 of 2 events refused; none of the request's events was recorded")
    assert ledger.totals() == {}


async def test_every_refused_event_is_named(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    batch = [openmeter_event(1, "unknown"), openmeter_event(2),
             "not an event", openmeter_event(4, value=1.5)]
    rejected = refused(await send(client, batch, documented=False))
    assert [(r["index"], r["id"]) for r in rejected] == [
        (0, "call-1"), (2, None), (3, "call-4")]
    assert ledger.totals() == {}


async def test_an_id_reused_for_another_event_records_nothing(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    """The ledger finds the conflict inside its transaction, and rolls
    the request's other events back with it."""
    assert (await send(client, openmeter_event(1), ONE)).status_code == 204
    batch = [openmeter_event(2), openmeter_event(1, value=7),
             openmeter_event(3), openmeter_event(3, value=8)]
    rejected = refused(await send(client, batch))
    assert [(r["index"], r["reason"]) for r in rejected] == [
        (1, "id already used by a different event"),
        (3, "id already used by a different event")]
    assert ledger.event_count() == 1
    assert (await send(client, batch[::2])).status_code == 204
    assert ledger.totals() == {("acme", "audio_ms", ()): 4500}


@pytest.mark.parametrize(("content_type", "body", "detail"), [
    ("text/plain", [openmeter_event(1)], "invalid content type: text/plain"),
    ("", [openmeter_event(1)], "invalid content type: none"),
    ("application/x-www-form-urlencoded", [openmeter_event(1)],
     "invalid content type: application/x-www-form-urlencoded"),
    (ONE, [openmeter_event(1)], "body is a list; its content type holds"
     " one event"),
    (BATCH, openmeter_event(1), "body is not a list; its content type"
     " holds a list"),
    (BATCH, [], "empty batch"),
    (BATCH, b"{not json", "body is not valid JSON"),
])
async def test_a_body_of_the_wrong_type_or_shape_is_400(
        client: httpx.AsyncClient, ledger: Ledger, content_type: str,
        body: object, detail: str) -> None:
    """OpenMeter answers 400, not 415, to a type it does not take."""
    response = await send(client, body, content_type, documented=False)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"].startswith(detail)
    assert "extensions" not in response.json()
    assert ledger.totals() == {}


@pytest.mark.parametrize(("headers", "status", "detail"), [
    ({}, 401, "missing or invalid API key"),
    ({"Authorization": "Bearer wrong"}, 401, "missing or invalid API key"),
    ({"Authorization": "Bearer orphan-key"}, 403,
     "no billing account for this API key"),
])
async def test_a_missing_or_unbilled_key_is_refused(
        client: httpx.AsyncClient, ledger: Ledger,
        headers: dict[str, str], status: int, detail: str) -> None:
    response = await send(client, openmeter_event(1), ONE, headers=headers)
    assert (response.status_code, response.json()["detail"]) == (
        status, detail)
    assert response.json()["title"] in ("Unauthorized", "Forbidden")
    assert ledger.totals() == {}


async def test_a_customers_key_reports_only_its_own_usage(
        client: httpx.AsyncClient, ledger: Ledger) -> None:
    acme = {"Authorization": "Bearer acme-key"}
    own = await send(client, openmeter_event(1), ONE, headers=acme)
    other = await send(client, [openmeter_event(2, subject="demo")],
                       headers=acme)
    assert own.status_code == 204
    [rejected] = refused(other)
    assert rejected["reason"] == (
        "a key of 'acme' cannot report another customer's usage")
    assert ledger.totals() == {("acme", "audio_ms", ()): 1500}


async def test_an_oversized_body_is_a_problem_too(
        client: httpx.AsyncClient) -> None:
    response = await send(client, b" " * (1024 * 1024 + 1),
                          documented=False)
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM


async def test_a_busy_ledger_is_503_and_the_retry_counts_once(
        tmp_path: Path, ledgers: Ledgers) -> None:
    path = tmp_path / "l.sqlite3"
    ledger = ledgers.at(f"sqlite:///{path}", busy_timeout_s=0.1)
    async with ingest_client(ledger, ApiKeys(())) as client:
        batch = [openmeter_event(1), openmeter_event(2)]
        with write_lock(path):
            busy = await send(client, batch)
        retry = await send(client, batch)
    assert (busy.status_code, busy.headers["retry-after"]) == (503, "1")
    assert busy.json()["detail"] == "ledger busy; nothing was written"
    assert retry.status_code == 204
    assert ledger.totals() == {("acme", "audio_ms", ()): 3000}


async def test_metrics_count_each_events_outcome(
        client: httpx.AsyncClient) -> None:
    await send(client, [openmeter_event(1), openmeter_event(1)])
    await send(client, [openmeter_event(2), openmeter_event(3, "x")])
    text = (await client.get("/metrics")).text
    for status, count in (("accepted", 1), ("duplicate", 1),
                          ("rejected", 1)):
        assert f'usage_events_total{{status="{status}"}} {count}.0' in text


def test_every_type_maps_to_a_meter_or_to_our_own_events() -> None:
    assert METER_OF_TYPE[EVENT_TYPE] is None
    assert sorted(m for m in METER_OF_TYPE.values() if m) == [
        "audio_ms", "characters", "tokens"]


def test_the_check_catches_what_openmeter_would_refuse() -> None:
    """The check itself: requests outside OpenMeter's document, and
    answers OpenMeter would not give, fail it; its own example passes."""
    event = openmeter_event(1)
    example = SPEC["components"]["schemas"]["Event"]["example"]
    assert request_problems(json.dumps(example).encode(), ONE) == []
    no_subject = {k: v for k, v in event.items() if k != "subject"}
    assert request_problems(json.dumps(no_subject).encode(), ONE) == [
        "[]: 'subject' is a required property"]
    assert request_problems(json.dumps([event]).encode(), ONE) != []
    assert request_problems(json.dumps(event).encode(), BATCH) != []
    assert request_problems(json.dumps({**event, "time": "noon"}).encode(),
                            ONE) == ["['time']: 'noon' is not a 'date-time'"]
    assert request_problems(json.dumps({**event, "data": [1]}).encode(),
                            ONE) != []
    assert request_problems(b"[]", "text/plain") != []

    def answer(status: int, body: bytes,
               media: str = PROBLEM) -> httpx.Response:
        return httpx.Response(status, content=body,
                              headers={"content-type": media})

    good = {"type": "about:blank", "title": "Bad Request", "status": 400,
            "detail": "why", "instance": "urn:request:1"}
    assert answer_problems(answer(400, json.dumps(good).encode())) == []
    assert answer_problems(httpx.Response(204)) == []
    assert answer_problems(httpx.Response(204, content=b"{}")) == [
        "204 has a body; none is documented"]
    no_instance = {k: v for k, v in good.items() if k != "instance"}
    assert answer_problems(answer(400, json.dumps(no_instance).encode())
                           ) == ["[]: 'instance' is a required property"]
    assert answer_problems(answer(
        400, json.dumps({**good, "instance": "request 1"}).encode())) == [
        "['instance']: 'request 1' is not a 'uri'"]
    assert answer_problems(answer(
        503, json.dumps({**good, "status": 99}).encode())) != []
    assert answer_problems(answer(
        401, json.dumps(good).encode(), "application/json")) == [
        "401 answered as 'application/json'"]
    assert DOCUMENT["x-source"]["commit"] in DOCUMENT["x-source"]["url"]

"""The OpenAPI document, tried by schemathesis on every route.

schemathesis reads `/openapi.json` from the service on a real socket,
generates requests for every operation it lists, with a key: requests
the document allows, the same with a model the service has and a file
of speech (so they reach the transcript, streamed or not), and requests
the document forbids, which must be refused. It checks every answer:
never a server error, always a status, content type, body (each SSE
event included) and headers the document declares.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ch04_streaming.auth import ApiKeys
from ch07_api.__main__ import Server
from ch07_api.app import Parts, create_app
from tests.ch07.aip_harness import AUTH, KEY, fast_settings, fixture_bytes

STARTED_WITHIN_S = 30.0
EXAMPLES = 15  # per operation and mode
FOX = fixture_bytes("quick_brown_fox")
# A schema cannot say which bytes are audio: a request the document
# allows whose file is not audio is refused with 400 invalid_audio, by
# design, so "schema-valid data is accepted" cannot hold for uploads.
# Every other check runs.
BYTES_ARE_NOT_AUDIO = positive_data_acceptance


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service on a free port, in a thread with its own loop."""
    tmp: Path = tmp_path_factory.mktemp("openapi")
    app = create_app(fast_settings(tmp, max_upload_mb=1.0),
                     Parts(keys=ApiKeys.of(KEY)))
    server = Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                   log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTED_WITHIN_S
    while not server.started:
        assert thread.is_alive(), "the service did not start"
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.01)
    [listener] = [s for srv in server.servers for s in srv.sockets]
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    server.should_exit = True
    thread.join(STARTED_WITHIN_S)


@pytest.fixture(scope="module")
def api_schema(base_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


def test_every_route_keeps_its_document(
        api_schema: schemathesis.BaseSchema) -> None:
    operations = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document is valid
        operations.append(result.ok())
    assert len(operations) >= 17  # every route, both versions
    refused_invalid = []
    for operation, mode in itertools.product(operations, GenerationMode):
        cases = operation.as_strategy(generation_mode=mode)
        if mode is GenerationMode.POSITIVE:
            cases = st.one_of(cases, cases.map(realistic))

        # schemathesis' pytest plugin is not yet ready for pytest 9: the
        # same checks, through hypothesis directly.
        @given(case=cases)
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def keeps_its_document(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(headers=AUTH,
                                   excluded_checks=[BYTES_ARE_NOT_AUDIO])

        try:
            keeps_its_document()
        except Unsatisfiable:
            # The document allows every request schemathesis can make
            # of it (no body, a path parameter that is any string):
            # there is no invalid request to send.
            assert mode is GenerationMode.NEGATIVE, operation.label
            continue
        if mode is GenerationMode.NEGATIVE:
            refused_invalid.append(operation.label)
    assert "POST /v1/audio/transcriptions" in refused_invalid


def realistic(case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    """The case with a model the service has and a file of speech, so
    that requests get past the model lookup and the decoder, to the
    answers only a transcription gives."""
    if isinstance(case.body, dict):
        body: dict[str, Any] = case.body  # multipart: file as bytes
        if "model" in body:
            body["model"] = "mock-asr"
        if "file" in body:
            body["file"] = FOX
    return case

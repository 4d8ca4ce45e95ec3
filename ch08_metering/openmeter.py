"""OpenMeter's event ingestion API, answered from our ledger.

Chapter 8, "Metering architecture" (OpenMeter, the open-source
alternative). OpenMeter ingests CloudEvents at `POST /api/v1/events`:
one event as `application/cloudevents+json`, a list as
`application/cloudevents-batch+json`, either as `application/json`;
204 with no body when it took them, an RFC 7807 problem
(`application/problem+json`) when it did not. Its events name what
happened in `type`, which its meters select on; ours carry their meter
in `data`. `METER_OF_TYPE` is the mapping, and its types are the only
ones taken: an event of any other type has no meter here and is
refused with the types there are. An event is then ours, judged and
recorded as any other (`ingest_api.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Literal

from fastapi.responses import JSONResponse

from ch08_metering.events import EVENT_TYPE, Meter, Rejected, given_id

OPENMETER_PATH = "/api/v1/events"
PROBLEM_TYPE = "application/problem+json"
Shape = Literal["one", "many", "either"]
# OpenMeter's media types, and what a body of each holds.
SHAPES: Mapping[str, Shape] = {
    "application/cloudevents+json": "one",
    "application/cloudevents-batch+json": "many",
    "application/json": "either",
}
# CloudEvents' optional attributes, which may be sent as null.
OPTIONAL = ("time", "datacontenttype", "dataschema", "data")

# --8<-- [start:openmeter_mapping]
# OpenMeter's `type` -> our meter; the value is `data.value`, as an
# OpenMeter meter of aggregation SUM and valueProperty `$.value` on that
# type would read it. Our own type names its meter in `data.meter`.
METER_OF_TYPE: Mapping[str, Meter | None] = {
    EVENT_TYPE: None,
    "transcription": "audio_ms",  # milliseconds of audio transcribed
    "speech_synthesis": "characters",  # characters spoken
    "prompt": "tokens",  # an LLM's tokens, OpenMeter's own example type
}


def as_usage_event(raw: object) -> object | Rejected:
    """An OpenMeter event as one of ours (still to be validated), or
    why it cannot be one. Optional attributes sent as null are left
    out, as CloudEvents allows."""
    if not isinstance(raw, dict):
        return raw
    event = {name: value for name, value in raw.items()
             if not (value is None and name in OPTIONAL)}
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in METER_OF_TYPE:
        return unknown_type(raw, kind)
    meter = METER_OF_TYPE[kind]
    data = event.get("data")
    if meter is None or not isinstance(data, dict):
        return {**event, "type": EVENT_TYPE}
    if "meter" in data:
        return Rejected(given_id(raw), f"data.meter: type {kind!r} names"
                        f" the meter ({meter}); leave it out")
    return {**event, "type": EVENT_TYPE, "data": {"meter": meter, **data}}
# --8<-- [end:openmeter_mapping]


def unknown_type(raw: dict[str, object], kind: object) -> Rejected:
    known = ", ".join(sorted(METER_OF_TYPE))
    what = f"{kind[:100]!r} is not" if isinstance(kind, str) else "must be"
    return Rejected(given_id(raw), f"type: {what} an event type metered"
                    f" here; known: {known}")


def problem(status: int, detail: str,
            headers: dict[str, str] | None = None,
            extensions: Mapping[str, object] | None = None) -> JSONResponse:
    """An RFC 7807 problem, as OpenMeter writes one."""
    body: dict[str, object] = {
        "type": "about:blank", "title": HTTPStatus(status).phrase,
        "status": status, "detail": detail,
        "instance": f"urn:request:{uuid.uuid4().hex}"}
    if extensions:
        body["extensions"] = dict(extensions)
    return JSONResponse(body, status, headers, media_type=PROBLEM_TYPE)

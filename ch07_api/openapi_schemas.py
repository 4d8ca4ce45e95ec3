"""The OpenAPI document: every route, every answer, errors included.

Chapter 7, "SDK and developer experience". SDK generators and
contract tests read the OpenAPI document, so it must describe what the
routes really send. Routes that parse their own bodies (to check the
key and the size before reading them) name their schemas by reference;
this adds those schemas, so every reference resolves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF_TEMPLATE = "#/components/schemas/{model}"
# Before OpenAPI 3.2's `itemSchema`, the schema of `text/event-stream`
# describes one event, not the stream as a string.
SSE_EVENT: dict[str, Any] = {
    "type": "object", "required": ["data"],
    "description": "One server-sent event; `data` is JSON, or [DONE]",
    "properties": {"event": {"type": "string"},
                   "data": {"type": "string"},
                   "id": {"type": "string"},
                   "retry": {"type": "integer"}},
}


def with_models(app: FastAPI, requests: Sequence[type[BaseModel]],
                responses: Sequence[type[BaseModel]]
                ) -> Callable[[], dict[str, Any]]:
    """`app.openapi`, with these models' schemas among its components
    (request bodies as they are validated, answers as serialised)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        models = [(m, "validation") for m in requests] + [
            (m, "serialization") for m in responses]
        _, schemas = models_json_schema(models,  # type: ignore[arg-type]
                                        ref_template=REF_TEMPLATE)
        components = document.setdefault("components", {})
        components.setdefault("schemas", {}).update(schemas["$defs"])
        return document

    return openapi

"""Counting answers by route template and status, without touching them.

Chapter 7. A pure ASGI middleware, so a streamed response passes
through unbuffered and its disconnect reaches the route: only the
status of `http.response.start` is read on its way out.
"""

from __future__ import annotations

from dataclasses import dataclass

from ch07_api.api_metrics import ApiMetrics
from ch07_api.edge import App, Message, Receive, Scope, Send


@dataclass
class CountResponses:
    app: App
    metrics: ApiMetrics

    async def __call__(self, scope: Scope, receive: Receive,
                       send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.responses.labels(template, str(status)).inc()

"""Chapter 4's browser page, served by the WebRTC service.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
The page a reader demos is one page, whatever carries its audio: this
service serves chapter 4's files and answers the same discovery
requests, saying that its one dialect travels over WebRTC and that its
offers go to `/v1/realtime/calls`. The page then sends its audio as
the call's track (Opus, as any browser sends a microphone) instead of
frames on a WebSocket, and reads the dialect's events on the data
channel. The answers are chapter 4's own (`page_reply`), in this
service's error shape: fixtures from chapter 4's library, only the
files it lists, each read once per request, off the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response

from ch04_streaming.dialects.dialect import Dialect
from ch04_streaming.page_api import (
    DIALECTS_PATH,
    FIXTURE_PREFIX,
    FIXTURES_PATH,
    METHODS,
    PAGE_FILES,
    DialectInfo,
    DialectList,
    FixtureLibrary,
    page_file,
    page_reply,
)
from ch05_protocols.rtc_signalling import CALLS, ApiError

# Every method is routed to the discovery answers, for them to say
# which are allowed (405 with `Allow`).
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def rtc_dialects(dialect: Dialect) -> DialectList:
    """What the page may choose here: the calls' dialect, over WebRTC."""
    return DialectList(dialects=[DialectInfo(
        name=dialect.name, label=dialect.label, path=CALLS,
        transport="webrtc")])


def page_endpoint(path: str) -> Callable[[], Awaitable[Response]]:
    """The route for one of the page's files: no parameters at all."""

    async def endpoint() -> Response:
        found = page_file(path)
        assert found is not None  # routed from PAGE_FILES alone
        body, content_type = found
        return Response(body, media_type=content_type)

    return endpoint


def page_router(dialect: Dialect, fixtures: FixtureLibrary) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    listing = rtc_dialects(dialect)
    for path in PAGE_FILES:
        router.add_api_route(path, page_endpoint(path),
                             methods=list(METHODS))

    async def discovery(request: Request) -> Response:
        page = await page_reply(request.method, request.url.path,
                                listing, fixtures)
        if page is None:
            raise ApiError(404, f"No such path: {request.url.path}.",
                           "not_found")
        if page.status != 200:
            raise ApiError(page.status, page.reason, None,
                           headers=page.headers)
        return Response(page.body, headers={
            "Content-Type": page.content_type,
            "Content-Length": str(page.length)})

    for path in (DIALECTS_PATH, FIXTURES_PATH, FIXTURE_PREFIX + "{name}"):
        router.add_api_route(path, discovery, methods=ANY_METHOD)
    return router

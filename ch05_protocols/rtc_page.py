"""Chapter 4's browser page, served by the WebRTC service.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
The page a reader demos is one page, whatever carries its audio: this
service serves chapter 4's files and answers the same discovery
requests, saying that its one dialect travels over WebRTC and that its
offers go to `/v1/realtime/calls`. The page then sends its audio as
the call's track (Opus, as any browser sends a microphone) instead of
frames on a WebSocket, and reads the dialect's events on the data
channel. Fixtures are chapter 4's library, served the same way: only
the files it lists, each read once per request, off the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response

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
    FixtureReadError,
    page_file,
    wav_bytes,
)
from ch05_protocols.rtc_signalling import CALLS, ApiError


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
    listing = rtc_dialects(dialect).to_json()

    for path in PAGE_FILES:
        router.add_api_route(path, page_endpoint(path),
                             methods=list(METHODS))

    @router.api_route(DIALECTS_PATH, methods=list(METHODS))
    async def dialects() -> Response:
        return Response(listing, media_type="application/json")

    @router.api_route(FIXTURES_PATH, methods=list(METHODS))
    async def fixture_list() -> Response:
        return Response(fixtures.listing.to_json(),
                        media_type="application/json")

    @router.api_route(FIXTURE_PREFIX + "{name}", methods=list(METHODS))
    async def fixture_file(name: str) -> Response:
        fixture = fixtures.at(FIXTURE_PREFIX + name)
        if fixture is None:
            raise ApiError(404, f"No fixture {name!r}.", "not_found")
        try:
            body = await wav_bytes(fixture, fixtures.max_bytes)
        except FixtureReadError as refused:
            raise ApiError(refused.status, refused.reason,
                           "fixture_unavailable") from None
        return Response(body, media_type="audio/wav")

    return router

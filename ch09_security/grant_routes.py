"""The token endpoints, on chapter 4's streaming port and on the API.

Chapter 9, "Authentication for streaming connections". AssemblyAI's SDK
asks for a temporary token on the host it streams to, so `GET
/v3/token` is served beside `/v3/ws` by chapter 4's server (a GET route
it runs before any upgrade); the JWKS that verifies every token is
served there too. Deepgram's grant is a POST, which a WebSocket server
does not take: it is served by this chapter's HTTP API (`http_api.py`),
whose base URL the Deepgram SDK is given separately from its streaming
URL. Errors keep each provider's shape: Deepgram's `category`,
`message`, `request_id` (developers.deepgram.com/reference/errors).
"""

from __future__ import annotations

import json
import uuid
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ch04_streaming.server import HttpRoute, error_response, json_response
from ch04_streaming.wire import WireMessage
from ch09_security.signing_keys import SigningKeys
from ch09_security.token_grants import Refused, TokenGrants

PAGE_TOKEN_PATH = "/v1/auth/page-token"
PAGE_TOKEN_TTL_S = 60  # time enough to open the stream, no more
CATEGORIES = {400: "INVALID_REQUEST", 401: "INVALID_AUTH",
              403: "INSUFFICIENT_PERMISSIONS"}


class AssemblyAIToken(WireMessage):
    type: Literal["Token"] = "Token"
    token: str
    expires_in_seconds: int


class DeepgramGrant(WireMessage):
    type: Literal["Grant"] = "Grant"
    access_token: str
    expires_in: float


class DeepgramError(WireMessage):
    type: Literal["Error"] = "Error"
    category: str
    message: str
    request_id: str


def deepgram_error(refused: Refused) -> DeepgramError:
    return DeepgramError(category=CATEGORIES.get(refused.status, "ERROR"),
                         message=refused.reason,
                         request_id=str(uuid.uuid4()))


def jwks_body(keys: SigningKeys) -> bytes:
    # A JWK Set is a standard document (RFC 7517): no `type` of ours.
    return json.dumps(keys.jwks()).encode()


class PageToken(WireMessage):
    type: Literal["Token"] = "Token"
    access_token: str
    expires_in: int


def stream_port_routes(grants: TokenGrants, keys: SigningKeys,
                       page_key_id: str | None = None
                       ) -> dict[str, HttpRoute]:
    """GET routes for chapter 4's server: AssemblyAI's token, JWKS, and
    with `page_key_id`, short-lived tokens for the browser page."""

    async def assemblyai_token(request: Request) -> Response:
        query = dict(parse_qsl(urlsplit(request.path).query))
        result = grants.assemblyai(request.headers.get("Authorization", ""),
                                   query)
        if isinstance(result, Refused):
            return error_response(result.status, result.reason)
        return json_response(200, AssemblyAIToken(
            token=result.token, expires_in_seconds=result.expires_in_s))

    async def jwks(request: Request) -> Response:
        body = jwks_body(keys)
        headers = Headers({"Content-Type": "application/json",
                           "Content-Length": str(len(body)),
                           "Cache-Control": "max-age=60"})
        return Response(200, "OK", headers, body)

    # --8<-- [start:page_token]
    async def page_token(request: Request) -> Response:
        """The page's backend: a 60 s token for this origin's page.

        It stands in for a customer's own backend, which would first
        authenticate its user; here only same-origin fetches get one,
        under the key named by `--page-tokens-for`, never its secret."""
        if request.headers.get("Sec-Fetch-Site") != "same-origin":
            return error_response(403, "only this origin's page")
        assert page_key_id is not None
        result = grants.for_page(page_key_id, PAGE_TOKEN_TTL_S)
        if isinstance(result, Refused):
            return error_response(result.status, result.reason)
        return json_response(200, PageToken(
            access_token=result.token, expires_in=result.expires_in_s))
    # --8<-- [end:page_token]

    routes: dict[str, HttpRoute] = {"/v3/token": assemblyai_token,
                                    "/.well-known/jwks.json": jwks}
    if page_key_id is not None:
        routes[PAGE_TOKEN_PATH] = page_token
    return routes

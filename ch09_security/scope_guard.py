"""Every HTTP route checks audience and scope: an ASGI guard in front.

Chapter 9, "OAuth2 flows for ML API access". Chapter 7's API already
refuses a request without a valid credential; behind this chapter's
layer a credential must also carry the scope of what it asks for:
`transcribe` for chapter 7's transcription routes. A token's audience
and signature are checked by `Credentials`; a key or token without the
scope is refused 403 with RFC 6750's `insufficient_scope`, one without
a valid credential 401 with `invalid_token`, before chapter 7 sees
the request. Probes (`/readyz`, `/healthz`, `/metrics`) stay open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from ch04_streaming.auth import authorization_key
from ch09_security.credentials import Credentials

OPEN_PATHS = ("/readyz", "/healthz", "/metrics")


# --8<-- [start:scope_guard]
@dataclass
class RequireScope:
    app: ASGIApp
    credentials: Credentials
    scope: str

    async def __call__(self, scope: Scope, receive: Receive,
                       send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"authorization", b"")
        verdict = self.credentials.check(
            authorization_key(header.decode("latin-1")))
        if verdict.record is None:
            return await refuse(send, 401, "invalid_token", verdict.reason)
        if self.scope not in verdict.scopes:
            return await refuse(send, 403, "insufficient_scope",
                                f"this route needs the {self.scope} scope")
        await self.app(scope, receive, send)
# --8<-- [end:scope_guard]


async def refuse(send: Send, status: int, error: str,
                 description: str) -> None:
    """RFC 6750, section 3: the reason in the header and the body."""
    body = json.dumps({"type": "Error", "error": error,
                       "error_description": description}).encode()
    quoted = description.replace('"', "'")
    challenge = f'Bearer error="{error}", error_description="{quoted}"'
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate",
                             challenge.encode("latin-1", "replace"))]})
    await send({"type": "http.response.body", "body": body})

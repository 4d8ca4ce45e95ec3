"""Page tokens that are opaque and cannot be forged (AIP-132, AIP-158).

Chapter 7, "Resource-oriented API design". A list's `next_page_token`
says where the next page starts. If a client could read or edit it,
it would come to depend on its format, or page through a collection
it was never shown; so the token is the position and the query it
belongs to, signed with HMAC-SHA256 and base64url-encoded. A token
that was altered, or is used with a different collection, is refused
with INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from ch07_api.errors import InvalidRequestError


# --8<-- [start:page_tokens]
@dataclass(frozen=True)
class PageTokens:
    secret: bytes

    def issue(self, collection: str, after: int) -> str:
        body = json.dumps({"c": collection, "a": after}).encode()
        mac = hmac.new(self.secret, body, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")

    def read(self, collection: str, token: str) -> int:
        """The position a token names; INVALID_ARGUMENT if forged."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            mac, body = raw[:32], raw[32:]
            expected = hmac.new(self.secret, body, hashlib.sha256).digest()
            fields = json.loads(body) if hmac.compare_digest(
                mac, expected) else {}
        except ValueError:
            fields = {}
        if fields.get("c") != collection or not isinstance(
                fields.get("a"), int):
            raise InvalidRequestError(
                "page_token is not valid for this list: pass the"
                " next_page_token of the previous page, unchanged",
                "page_token")
        after: int = fields["a"]
        return after
# --8<-- [end:page_tokens]

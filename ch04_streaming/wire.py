"""Typed wire messages: what the server sends, declared once.

Chapter 4, "Reference architectures from production providers". Every
message a dialect sends, and the JSON body of every refusal, is a
pydantic model whose `type` is a literal, so a misspelt field or a
missing `type` is a type error, not a client's parse error. A message
becomes JSON exactly once, when it is queued for its client; fields left
as None are left out, as the providers leave out what does not apply.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireMessage(BaseModel):
    """A message on the wire; subclasses fix `type` with a Literal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

"""Chapter 4's streaming client, speaking this chapter's two framings.

Chapter 5, "WebSocket for audio: binary framing, persistent connections,
backpressure". The same client, chunking and latency measurement as
chapter 4's; only the path and the framing of audio differ: a binary
frame per chunk at `/ws/binary`, a JSON text frame with the chunk in
base64 at `/ws/base64` (`base64_frame`). `examples.stream_base64` is
built on it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from ch04_streaming.client import ClientAudio, Heard
from ch05_protocols.ws_dialects import BASE64, BINARY


def base64_frame(chunk: bytes) -> str:
    """One chunk of audio as the base64 framing sends it."""
    data = base64.b64encode(chunk).decode("ascii")
    return json.dumps({"type": "audio", "data": data})


@dataclass
class JsonSocketClient:
    """The client side of one framing (`ClientDialect`)."""

    path: str
    options: dict[str, str] = field(default_factory=dict)  # more query
    close_message: str = json.dumps({"type": "close"})
    min_chunk_ms: int = 0

    def query(self, audio: ClientAudio) -> dict[str, str]:
        return {"encoding": audio.encoding,
                "sample_rate": str(audio.sample_rate), **self.options}

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Token {key}"}

    def heard(self, message: Mapping[str, object]) -> Heard | None:
        if message.get("type") != "transcript":
            return None
        words = message["words"]
        start = message["start"]
        assert isinstance(words, list) and isinstance(start, float | int)
        return Heard(
            str(message["text"]), bool(message["is_final"]),
            words[0]["start"] if words else None,
            words[-1]["end"] if words else None, float(start))


def binary_client(**options: str) -> JsonSocketClient:
    return JsonSocketClient(BINARY.path, dict(options))


def base64_client(**options: str) -> JsonSocketClient:
    return JsonSocketClient(BASE64.path, dict(options))

"""The dialects a media transport's streams may speak.

Chapter 5, "WebRTC" and "WebTransport". Over WebRTC and WebTransport
the audio travels beside the events, as PCM16 at 24 kHz, so each
dialect is built to read binary frames as audio and is asked for the
stream the way its WebSocket upgrade would ask: OpenAI's realtime
events by default, Deepgram's `Results` (which say what stream time
each covers) for the lossy-link lab, with its VAD events for the
browser page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from ch04_streaming.dialects.deepgram import Deepgram
from ch04_streaming.dialects.dialect import Dialect
from ch04_streaming.dialects.openai_realtime import OpenAIRealtime

# name -> (the dialect, the query its stream is opened with)
DIALECTS: Mapping[str, tuple[Callable[[], Dialect], Mapping[str, str]]] = {
    "realtime": (partial(OpenAIRealtime, audio_frames=True),
                 {"intent": "transcription"}),
    "deepgram": (Deepgram, {"encoding": "linear16", "sample_rate": "24000",
                            "interim_results": "true",
                            "vad_events": "true"}),
}

"""`python -m ch05_protocols ws`: both WebSocket designs on one port.

Chapter 5, "WebSocket for audio: binary framing, persistent connections,
backpressure". Chapter 4's service, session core and limits unchanged,
with this chapter's two framings mounted beside its dialects: binary
audio at `/ws/binary`, base64-in-JSON at `/ws/base64`, Deepgram's at
`/v1/listen`, AssemblyAI's at `/v3/ws`, so the two designs can be
compared on one server. Every flag of `python -m ch04_streaming` works
here too; the port defaults to 8005.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from ch04_streaming.app import build_server, event_loop_factory, serve
from ch04_streaming.settings import parse_settings
from ch05_protocols.ws_dialects import chapter5_dialects

DEFAULT_PORT = 8005


def main(argv: Sequence[str] = ()) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    # The port's default, under every CH04_ variable and flag given.
    env = {"CH04_PORT": str(DEFAULT_PORT), **os.environ}
    settings = parse_settings(list(argv), env)
    built = build_server(settings, more_dialects=chapter5_dialects())
    paths = ", ".join(chapter5_dialects())
    print(f"chapter 5 framings at {paths}", flush=True)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(serve(settings, built))

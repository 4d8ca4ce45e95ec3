"""`python -m ch05_protocols rtc`: speech over WebRTC, on port 8305.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
Flags (and `CH05_RTC_<NAME>` variables) set the WebRTC service's
limits; the engine's settings are chapter 4's `CH04_<NAME>` variables.
The service listens at once, refuses calls with 503 until the model is
warm, and on SIGTERM lets open calls finish their utterances.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from ch04_streaming.app import event_loop_factory
from ch05_protocols.rtc_settings import parse_rtc_settings


def main(argv: Sequence[str]) -> int:
    """`python -m ch05_protocols rtc [flags]`."""
    settings = parse_rtc_settings(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    # Each ICE check at INFO would drown the service's own events.
    logging.getLogger("aioice").setLevel(logging.WARNING)
    from ch05_protocols import rtc_app  # aiortc loads only for this

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(rtc_app.serve(settings))

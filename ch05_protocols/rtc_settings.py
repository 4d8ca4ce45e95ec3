"""The WebRTC service's settings, from flags and environment variables.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
What a WebRTC ingest bounds (calls at once, how long a call may take to
connect, the size of an offer, the client secrets held) and the
service's own knobs (where it listens, the shutdown grace) each have a
flag, a `CH05_RTC_<NAME>` variable and a default. The engine and the
VAD are chapter 4's, set by its `CH04_<NAME>` variables.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

from ch04_streaming.settings import Settings, option, parse_settings
from ch04_streaming.settings import add_flags as add_setting_flags
from ch05_protocols.media_dialects import DIALECTS


@dataclass(frozen=True)
class RtcSettings:
    host: str = option("127.0.0.1", "address to listen on")
    port: int = option(8305, "port to listen on")
    max_calls: int = option(50, "calls at once before 503")
    connect_timeout_s: float = option(
        10.0, "seconds for a call's ICE, DTLS and data channel to open")
    max_offer_bytes: int = option(
        64 * 1024, "largest SDP offer (or multipart body) accepted")
    max_client_secrets: int = option(
        10_000, "ephemeral keys held at once before 429")
    shutdown_grace_s: float = option(
        10.0, "seconds to finish calls on SIGTERM")
    dialect: str = option(
        "realtime", "the events calls speak: realtime (OpenAI's) or"
        " deepgram (Deepgram's Results, each with the stream time it"
        " covers)")
    speech: Settings = field(default_factory=Settings)  # chapter 4's
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


def parse_rtc_settings(argv: Sequence[str],
                       env: Mapping[str, str] | None = None
                       ) -> RtcSettings:
    """Flags win over `CH05_RTC_<NAME>` variables, which win over the
    defaults; the engine's settings come from `CH04_<NAME>`."""
    env = dict(os.environ if env is None else env)
    parser = argparse.ArgumentParser(
        prog="python -m ch05_protocols rtc",
        description="Streaming transcription over WebRTC, signalled as"
                    " OpenAI's Realtime API signals it.")
    add_setting_flags(parser, RtcSettings, "CH05_RTC", env)
    args = parser.parse_args(list(argv))
    if args.dialect not in DIALECTS:
        parser.error(f"--dialect must be one of {', '.join(DIALECTS)}")
    flags = {f.name: getattr(args, f.name) for f in fields(RtcSettings)
             if "help" in f.metadata}
    return RtcSettings(**flags, speech=parse_settings([], env), env=env)

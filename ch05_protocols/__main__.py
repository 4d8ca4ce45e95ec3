"""`python -m ch05_protocols COMMAND`: the chapter's servers and labs.

Chapter 5. Each command has its own flags: `grpc` serves streaming
recognition over gRPC, `ws` serves binary and base64 WebSocket audio
side by side on chapter 4's service, `rtc` serves audio over WebRTC
with OpenAI's signalling, `wt` serves WebTransport sessions (audio as
QUIC datagrams or on a stream), `stall` compares buffering with
dropping stale audio after a stalled link, `lossy` measures each
transport on a link that loses packets, and `choose` recommends a
protocol for a client's constraints. Bad flags stop with exit status 2
and a message naming the flag.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ch05_protocols import (
    choose,
    grpc_command,
    lossy,
    rtc_command,
    stall,
    ws_server,
    wt_command,
)

Command = Callable[[Sequence[str]], int]
COMMANDS: dict[str, tuple[Command, str]] = {
    "grpc": (grpc_command.main, "streaming recognition over gRPC"
             " (speech.v1.Speech)"),
    "ws": (ws_server.main, "binary and base64 WebSocket audio, side by"
           " side on one server"),
    "rtc": (rtc_command.main, "audio over WebRTC, signalled as OpenAI's"
            " Realtime API signals it"),
    "wt": (wt_command.main, "WebTransport sessions: audio as QUIC"
           " datagrams or on a stream"),
    "stall": (stall.main, "a stalled link: buffering against dropping"
              " stale audio"),
    "lossy": (lossy.main, "head-of-line blocking: each transport on a"
              " link that loses packets"),
    "choose": (choose.main, "the protocol for a client's constraints"),
}


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in COMMANDS:
        # A command parses its own flags, --help included.
        run, _ = COMMANDS[words[0]]
        return run(words[1:])
    parser = argparse.ArgumentParser(
        prog="python -m ch05_protocols",
        description="Chapter 5: protocol selection for audio.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        commands.add_parser(name, help=help_text)
    parser.parse_args(words)  # exits: help, or an unknown command
    return 2


if __name__ == "__main__":
    sys.exit(main())

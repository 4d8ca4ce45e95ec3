"""The abuse limits of `python -m ch09_security serve`: flags, each
with an environment variable and a default.

Chapter 9, "Rate limiting and abuse prevention for inference
endpoints". Two limits are this chapter's (`--allowed-origins`,
`--new-streams-per-minute`); the others are chapter 4's server
settings, off or loose when chapter 4 runs alone (a load test opens
thousands of streams from one address), and set here, where strangers
hold keys. Their variables are chapter 4's, so one variable sets the
limit whichever command serves.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from ch04_streaming.settings import Settings
from ch09_security.abuse_limits import AbuseLimits, NewStreamRate
from ch09_security.origins import OriginAllowlist, OriginError, parse_origins

MAX_STREAMS_PER_IP = 100  # half the server's streams
MAX_HANDSHAKES_PER_IP = 32  # a handshake takes milliseconds
# Chapter 4's settings this command sets: name, type, default, help.
SERVER_CAPS: tuple[tuple[str, type, object, str], ...] = (
    ("max_streams_per_ip", int, MAX_STREAMS_PER_IP,
     "streams one client address may hold before 429; 0: no cap"),
    ("max_handshakes_per_ip", int, MAX_HANDSHAKES_PER_IP,
     "connections from one address whose upgrade request is not"
     " answered yet, before 429; 0: no cap"),
    ("open_timeout_s", float, Settings().open_timeout_s,
     "seconds a client has to send its whole upgrade request"),
)


def origins_flag(text: str) -> frozenset[str]:
    try:
        return parse_origins(text)
    except OriginError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def per_minute_flag(text: str) -> float:
    value = float(text)
    if not 1 <= value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text}: at least 1, or no stream could ever open")
    return value


def add_abuse_flags(parser: argparse.ArgumentParser,
                    env: Mapping[str, str]) -> None:
    parser.add_argument(
        "--allowed-origins", type=origins_flag,
        default=env.get("ALLOWED_ORIGINS"),
        help="comma-separated origins whose pages may stream, e.g. "
        "https://app.example.com (env ALLOWED_ORIGINS; default: this "
        "service's own); requests without Origin (not browsers) pass")
    parser.add_argument(
        "--new-streams-per-minute", type=per_minute_flag,
        default=env.get("NEW_STREAMS_PER_MINUTE",
                        str(NewStreamRate().per_minute)),
        help="streams one key may open a minute, and at once (env "
        "NEW_STREAMS_PER_MINUTE; default %(default)s)")
    for name, kind, default, text in SERVER_CAPS:
        variable = f"CH04_{name.upper()}"
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=kind,
            default=env.get(variable, str(default)),
            help=f"{text} (env {variable}; default %(default)s)")


def abuse_limits(args: argparse.Namespace,
                 own: frozenset[str]) -> AbuseLimits:
    """This chapter's limits; `own` are the service's own origins."""
    return AbuseLimits(OriginAllowlist(args.allowed_origins or own),
                       NewStreamRate(args.new_streams_per_minute))


def server_caps(args: argparse.Namespace) -> dict[str, Any]:
    """Chapter 4's settings this command sets, by name."""
    return {name: getattr(args, name) for name, *_ in SERVER_CAPS}

"""Which protocol for this client: the chapter's decision framework.

Chapter 5, "Decision framework". A pure function from a client's
constraints (where it runs, its latency target, whether audio flows
both ways, Safari, a Google-style gRPC ecosystem, a lossy network) to a
typed recommendation: the protocol, the reasons, and each alternative
with why it lost. WebSocket is the default, as in production; gRPC
serves server-to-server streams in ecosystems that already speak it;
WebRTC carries browser and mobile media, above all on lossy networks or
for conversation both ways; WebTransport (new in Safari) and Media over
QUIC (a draft) are where the field is going, not where to ship today.

    python -m ch05_protocols.choose --client browser --latency-ms 300 \\
        [--no-bidirectional] [--safari] [--google-ecosystem] \\
        [--lossy-network] [--loss-pct 2 [--measured FILE]]

With `--loss-pct`, `choose_measured` checks the pick against what the
lossy-link lab measured at that loss (`lab_figures.py`): a TCP
transport that misses the target there gives way to the measured
transport that meets it and loses the least audio; the reasons quote
the figures.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from ch05_protocols.lab_figures import RESULTS, LabFigures, load_lab_figures

# Below this, a conversation both ways needs media transport: a jitter
# buffer, echo cancellation and no retransmission stalls (WebRTC).
CONVERSATIONAL_MS = 200


class Client(StrEnum):
    BROWSER = "browser"
    SERVER = "server"
    MOBILE = "mobile"


class Protocol(StrEnum):
    WEBSOCKET = "WebSocket"
    GRPC = "gRPC bidirectional streaming"
    WEBRTC = "WebRTC"
    WEBTRANSPORT = "WebTransport"
    MOQ = "Media over QUIC"


@dataclass(frozen=True)
class Constraints:
    client: Client
    latency_ms: int  # first result after speech, the product's target
    bidirectional: bool = True  # audio (or results) flow both ways
    safari: bool = False  # must work in Safari (and so on iOS browsers)
    google_ecosystem: bool = False  # services already speak gRPC
    lossy_network: bool = False  # cellular, Wi-Fi at the edge
    loss_pct: float | None = None  # packet loss expected, if known


@dataclass(frozen=True)
class Recommendation:
    protocol: Protocol
    reasons: tuple[str, ...]
    not_chosen: tuple[tuple[Protocol, str], ...]  # and why not


# --8<-- [start:choose_protocol]
def choose_protocol(c: Constraints) -> Recommendation:
    """The chapter's decision tree, first match wins."""
    device = c.client is not Client.SERVER
    reasons: tuple[str, ...]
    if device and c.lossy_network:
        pick, reasons = Protocol.WEBRTC, (
            "audio from a device over a lossy network: UDP with a jitter"
            " buffer and loss concealment, no retransmission stalls",)
    elif (device and c.bidirectional
          and c.latency_ms < CONVERSATIONAL_MS):
        pick, reasons = Protocol.WEBRTC, (
            f"a conversation both ways under {CONVERSATIONAL_MS} ms:"
            " media transport with echo cancellation, as OpenAI's"
            " browser and mobile voice uses",)
    elif c.google_ecosystem and c.client is not Client.BROWSER:
        pick, reasons = Protocol.GRPC, (
            "your services already speak gRPC: protobuf audio chunks,"
            " deadlines that propagate, Google Cloud Speech's own API",)
    else:
        pick, reasons = Protocol.WEBSOCKET, (
            "the production default: every browser (Safari included),"
            " every speech provider's API, binary frames for audio",
            "TCP's ordering suits recognition: every chunk matters, and"
            " backpressure can drop stale audio when a link stalls",)
    others = tuple((p, why_not(p, c, pick)) for p in Protocol
                   if p is not pick)
    return Recommendation(pick, reasons, others)
# --8<-- [end:choose_protocol]


def why_not(protocol: Protocol, c: Constraints, pick: Protocol) -> str:
    """Why `protocol` lost to `pick`, for these constraints."""
    if protocol is Protocol.WEBTRANSPORT:
        if c.safari:
            return ("Safari has it only since 26.4 (March 2026), with"
                    " interop problems reported; Chrome, Edge and"
                    " Firefox for years")
        return ("not production-ready: few servers, no CDN or load"
                " balancer path, and no speech API offers it yet")
    if protocol is Protocol.MOQ:
        return "an IETF draft: no production deployments to build on"
    if protocol is Protocol.GRPC:
        if c.client is Client.BROWSER:
            return ("browsers have only gRPC-Web, which cannot stream"
                    " from the client")
        return ("worth it where services already speak gRPC; otherwise"
                " a protobuf toolchain and an HTTP/2 path for no gain")
    if protocol is Protocol.WEBRTC:
        if c.client is Client.SERVER:
            return ("built for devices: ICE, STUN and TURN, codecs to"
                    " negotiate, a media stack on the server")
        return ("media machinery (ICE, TURN, a media server) the"
                " latency target and network do not need")
    if pick is Protocol.GRPC:
        return ("works too, but beside gRPC services it is one more"
                " protocol, without their deadlines or schemas")
    return ("on a lossy network or in conversation, TCP's"
            " retransmissions stall the audio behind a lost packet")


# The lossy-link lab's transports, and the protocol each one is.
LAB_PROTOCOLS = {
    "websocket": Protocol.WEBSOCKET, "grpc": Protocol.GRPC,
    "webrtc": Protocol.WEBRTC, "wt_datagrams": Protocol.WEBTRANSPORT,
    "wt_streams": Protocol.WEBTRANSPORT,
}
LAB_NAMES = {Protocol.WEBSOCKET: "websocket", Protocol.GRPC: "grpc"}
LABELS = {"websocket": "WebSocket", "grpc": "gRPC", "webrtc": "WebRTC",
          "wt_datagrams": "WebTransport datagrams",
          "wt_streams": "WebTransport streams"}


def candidates(c: Constraints) -> tuple[str, ...]:
    """What may replace a TCP transport for this client: a browser
    that must work in Safari keeps to WebRTC (see `why_not`)."""
    if c.client is Client.BROWSER and c.safari:
        return ("webrtc",)
    return ("webrtc", "wt_datagrams", "wt_streams")


# --8<-- [start:choose_measured]
def choose_measured(c: Constraints, lab: LabFigures) -> Recommendation:
    """The tree's pick, kept if its measured p99 at the client's loss
    meets the target; else the transport measured to meet it that
    lost the least audio."""
    first = choose_protocol(c)
    name = LAB_NAMES.get(first.protocol, "")
    if c.loss_pct is None or (measured := lab.at(name, c.loss_pct)) is None:
        return first  # no loss given, or not a transport the lab ran
    loss, (p99, _) = f"{c.loss_pct:g}% loss", measured
    if p99 <= c.latency_ms:
        return replace(first, reasons=(*first.reasons, (
            f"measured at {loss}: p99 {p99:.0f} ms ({lab.source})")))
    fits = lab.meeting(candidates(c), c.loss_pct, c.latency_ms)
    if not fits:
        return replace(first, reasons=(*first.reasons, (
            f"measured at {loss}: p99 {p99:.0f} ms, over {c.latency_ms}"
            f" ms, and no transport measured meets it ({lab.source})")))
    lost, best_p99, best = fits[0]
    pick = LAB_PROTOCOLS[best]
    return Recommendation(pick, (
        f"measured at {loss}: {LABELS[name]}'s p99 is {p99:.0f} ms, over"
        f" {c.latency_ms} ms, as TCP waits to retransmit a lost packet",
        f"{LABELS[best]}: p99 {best_p99:.0f} ms, {lost:.1f}% of the"
        f" audio lost ({lab.source})"),
        tuple((p, why_not(p, c, pick)) for p in Protocol if p is not pick))
# --8<-- [end:choose_measured]


def report(recommendation: Recommendation) -> str:
    lines = [f"use {recommendation.protocol}"]
    lines += [f"  because {reason}" for reason in recommendation.reasons]
    lines.append("not chosen:")
    lines += [f"  {protocol}: {why}"
              for protocol, why in recommendation.not_chosen]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch05_protocols.choose",
        description="Recommend a streaming protocol for a client.")
    parser.add_argument("--client", choices=[c.value for c in Client],
                        required=True)
    parser.add_argument("--latency-ms", type=int, default=300,
                        help="target for the first result (default 300)")
    parser.add_argument("--bidirectional", default=True,
                        action=argparse.BooleanOptionalAction,
                        help="audio or results flow both ways")
    parser.add_argument("--safari", action="store_true",
                        help="must work in Safari")
    parser.add_argument("--google-ecosystem", action="store_true",
                        help="the services already speak gRPC")
    parser.add_argument("--lossy-network", action="store_true",
                        help="cellular or congested Wi-Fi")
    parser.add_argument("--loss-pct", type=float, default=None,
                        help="packet loss expected: checks the pick"
                        " against the lossy-link lab's figures")
    parser.add_argument("--measured", type=Path, default=None,
                        help="the lab's figures (default: bench/results/"
                        "ch05_rtc.json)")
    args = parser.parse_args(argv)
    if args.latency_ms <= 0:
        parser.error("--latency-ms must be positive")
    if args.loss_pct is not None and not 0 <= args.loss_pct <= 100:
        parser.error("--loss-pct must be from 0 to 100")
    constraints = Constraints(
        client=Client(args.client), latency_ms=args.latency_ms,
        bidirectional=args.bidirectional, safari=args.safari,
        google_ecosystem=args.google_ecosystem,
        lossy_network=args.lossy_network, loss_pct=args.loss_pct)
    if args.loss_pct is None:
        print(report(choose_protocol(constraints)))
        return 0
    lab = load_lab_figures(args.measured or RESULTS)
    if lab is None:
        print("no lab figures: run `make bench` (the lossy-link lab)"
              " first; deciding without them", file=sys.stderr)
        print(report(choose_protocol(constraints)))
        return 0
    print(report(choose_measured(constraints, lab)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

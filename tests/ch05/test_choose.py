"""The decision framework: every branch, and why the others lost."""

from __future__ import annotations

import pytest

from ch05_protocols.choose import (
    Client,
    Constraints,
    Protocol,
    choose_protocol,
    main,
)


def why_not(constraints: Constraints, protocol: Protocol) -> str:
    return dict(choose_protocol(constraints).not_chosen)[protocol]


@pytest.mark.parametrize(("constraints", "protocol"), [
    # A device on a lossy network: media transport, whatever else.
    (Constraints(Client.MOBILE, 300, lossy_network=True), Protocol.WEBRTC),
    (Constraints(Client.BROWSER, 1000, bidirectional=False,
                 lossy_network=True), Protocol.WEBRTC),
    # A conversation both ways under 200 ms, from a device.
    (Constraints(Client.BROWSER, 150), Protocol.WEBRTC),
    # ... but not one way, and not at 200 ms.
    (Constraints(Client.BROWSER, 150, bidirectional=False),
     Protocol.WEBSOCKET),
    (Constraints(Client.MOBILE, 200), Protocol.WEBSOCKET),
    # gRPC where the services speak it, outside browsers.
    (Constraints(Client.SERVER, 300, google_ecosystem=True), Protocol.GRPC),
    (Constraints(Client.MOBILE, 300, google_ecosystem=True), Protocol.GRPC),
    (Constraints(Client.BROWSER, 300, google_ecosystem=True),
     Protocol.WEBSOCKET),
    # Servers: no media stack, even on a lossy link or at 100 ms.
    (Constraints(Client.SERVER, 100, lossy_network=True),
     Protocol.WEBSOCKET),
    (Constraints(Client.BROWSER, 300, safari=True), Protocol.WEBSOCKET),
])
def test_the_decision_tree(constraints: Constraints,
                           protocol: Protocol) -> None:
    recommendation = choose_protocol(constraints)
    assert recommendation.protocol is protocol
    assert recommendation.reasons
    others = [p for p, _ in recommendation.not_chosen]
    assert sorted([*others, protocol]) == sorted(Protocol)


def test_webtransport_is_never_chosen_and_safari_says_why() -> None:
    safari = Constraints(Client.BROWSER, 100, safari=True)
    chrome = Constraints(Client.BROWSER, 100)
    assert "only since 26.4" in why_not(safari, Protocol.WEBTRANSPORT)
    assert "not production-ready" in why_not(chrome, Protocol.WEBTRANSPORT)
    assert "draft" in why_not(chrome, Protocol.MOQ)


def test_the_losers_are_told_apart_by_the_constraints() -> None:
    browser = Constraints(Client.BROWSER, 300)
    server = Constraints(Client.SERVER, 300)
    ecosystem = Constraints(Client.SERVER, 300, google_ecosystem=True)
    assert "gRPC-Web" in why_not(browser, Protocol.GRPC)
    assert "protobuf toolchain" in why_not(server, Protocol.GRPC)
    assert "built for devices" in why_not(server, Protocol.WEBRTC)
    assert "media machinery" in why_not(browser, Protocol.WEBRTC)
    assert "one more protocol" in why_not(ecosystem, Protocol.WEBSOCKET)
    lossy = Constraints(Client.MOBILE, 300, lossy_network=True)
    assert "retransmissions" in why_not(lossy, Protocol.WEBSOCKET)


def test_the_command_prints_the_choice_and_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--client", "mobile", "--lossy-network",
                 "--no-bidirectional"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "use WebRTC"
    assert "not chosen:" in out
    assert any(line.startswith("  Media over QUIC:") for line in out)


@pytest.mark.parametrize("argv", [["--client", "fridge"],
                                  ["--client", "server", "--latency-ms",
                                   "0"], []])
def test_bad_flags_stop_with_status_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2

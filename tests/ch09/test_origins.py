"""The origin allowlist, the key's rate of new streams, and the flags
that set the abuse limits: their rules, without a server."""

from __future__ import annotations

import argparse

import pytest

from ch04_streaming.stream_hooks import StreamStart
from ch09_security.abuse_limits import AbuseLimits, NewStreamRate
from ch09_security.abuse_settings import (
    MAX_HANDSHAKES_PER_IP,
    add_abuse_flags,
    server_caps,
)
from ch09_security.origins import (
    OriginAllowlist,
    OriginError,
    origin_of,
    own_origins,
    parse_origins,
)

PAGE = "https://app.example.com"


@pytest.mark.parametrize(("configured", "written"), [
    ("HTTPS://App.Example.com:443/", "https://app.example.com"),
    ("http://localhost:8009", "http://localhost:8009"),
    ("http://127.0.0.1:80", "http://127.0.0.1"),
    ("https://[::1]:8009", "https://[::1]:8009"),
])
def test_origins_are_written_as_browsers_write_them(
    configured: str, written: str,
) -> None:
    assert origin_of(configured) == written


def test_a_list_is_comma_separated_and_blanks_are_dropped() -> None:
    assert parse_origins(" https://A.example ,, http://localhost:3000,") == {
        "https://a.example", "http://localhost:3000"}
    assert parse_origins("") == frozenset()


@pytest.mark.parametrize("configured", [
    "app.example.com", "ftp://app.example.com", "https://",
    "https://app.example.com/page", "https://app.example.com?x=1",
    "https://user@app.example.com", "https://app.example.com:99999",
])
def test_a_configured_origin_must_be_an_origin(configured: str) -> None:
    with pytest.raises(OriginError, match="origin"):
        origin_of(configured)


def test_own_origins_name_this_machine_as_a_browser_may() -> None:
    assert own_origins("127.0.0.1", 8009) == {
        f"{scheme}://{host}:8009" for scheme in ("http", "https")
        for host in ("127.0.0.1", "localhost", "[::1]")}
    assert own_origins("0.0.0.0", 8009) == own_origins("localhost", 8009)
    assert own_origins("speech.example.com", 443) == {
        "http://speech.example.com:443", "https://speech.example.com"}


def start(origin: str | None) -> StreamStart:
    headers = {} if origin is None else {"origin": origin}
    return StreamStart("s1", "key", {}, headers)


@pytest.mark.parametrize(("origin", "status"), [
    (None, None),  # not a browser: its key alone decides
    (PAGE, None),
    ("HTTPS://APP.EXAMPLE.COM", None),
    ("https://evil.example", 403),
    ("https://app.example.com.evil.example", 403),
    ("http://app.example.com", 403),  # another scheme, another origin
    ("null", 403),  # a sandboxed frame or a local file
    (f"{PAGE}, https://evil.example", 403),  # two Origin lines, folded
])
def test_only_listed_pages_and_non_browsers_pass(
    origin: str | None, status: int | None,
) -> None:
    limits = AbuseLimits(OriginAllowlist(frozenset({PAGE})),
                         NewStreamRate())
    refusal = limits.check(start(origin), "key_1")
    assert (refusal.status if refusal else None) == status
    if refusal is not None:
        assert refusal.reason == (f"origin {origin} is not allowed to"
                                  " open streams")


def test_a_long_origin_is_cut_short_in_the_reason() -> None:
    refusal = OriginAllowlist().check("https://" + "a" * 500)
    assert refusal is not None and len(refusal.reason) < 130


def test_a_key_may_open_its_burst_then_one_a_second() -> None:
    now = [1000.0]
    rate = NewStreamRate(per_minute=60, clock=lambda: now[0])
    assert all(rate.take("key_a") is None for _ in range(60))
    refusal = rate.take("key_a")
    assert refusal is not None
    assert (refusal.status, refusal.retry_after_s) == (429, 1.0)
    assert refusal.reason == ("60 new streams a minute per key;"
                              " retry in 1.0 s")
    assert rate.take("key_b") is None  # another key has its own
    now[0] += 1.0
    assert rate.take("key_a") is None
    assert rate.take("key_a") is not None


@pytest.mark.parametrize("per_minute", [0.0, 0.5, float("inf")])
def test_a_rate_that_could_never_admit_is_refused_at_once(
    per_minute: float,
) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        NewStreamRate(per_minute)


def test_a_refused_origin_spends_nothing_of_the_rate() -> None:
    limits = AbuseLimits(OriginAllowlist(frozenset({PAGE})),
                         NewStreamRate(per_minute=1, clock=lambda: 0.0))
    assert limits.check(start("https://evil.example"), "k") is not None
    assert limits.check(start(PAGE), "k") is None
    refusal = limits.check(start(PAGE), "k")
    assert refusal is not None and refusal.status == 429


def parsed(argv: list[str], env: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_abuse_flags(parser, env)
    return parser.parse_args(argv)


def test_flags_win_over_the_environment_which_wins_over_defaults(
) -> None:
    env = {"ALLOWED_ORIGINS": "https://a.example, http://localhost:3000",
           "CH04_MAX_STREAMS_PER_IP": "7"}
    args = parsed(["--open-timeout-s", "2.5"], env)
    assert args.allowed_origins == {"https://a.example",
                                    "http://localhost:3000"}
    assert server_caps(args) == {
        "max_streams_per_ip": 7,
        "max_handshakes_per_ip": MAX_HANDSHAKES_PER_IP,
        "open_timeout_s": 2.5}
    assert parsed([], {}).allowed_origins is None  # the service's own
    assert parsed([], {}).new_streams_per_minute == 60.0
    assert parsed(["--allowed-origins", PAGE], env).allowed_origins == {
        PAGE}


@pytest.mark.parametrize(("argv", "env", "message"), [
    (["--allowed-origins", "app.example.com"], {}, "http(s)://host"),
    ([], {"ALLOWED_ORIGINS": "https://a.example/path"}, "no path"),
    (["--new-streams-per-minute", "0.5"], {}, "at least 1"),
    ([], {"CH04_OPEN_TIMEOUT_S": "soon"}, "invalid float value"),
])
def test_bad_settings_stop_the_command_with_the_reason(
    argv: list[str], env: dict[str, str], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        parsed(argv, env)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err

"""The chapter 9 benchmark's credential, handshake and storm figures,
computed on tiny inputs: their names and their kinds, no timings."""

from __future__ import annotations

import math
from pathlib import Path

from bench.__main__ import validate
from bench.ch09_security import service_figures
from bench.handshake_load import (
    handshakes,
    result_latencies_ms,
    storm,
)
from ch09_security.auth_bench import credential_costs_us, credential_figures
from ch09_security.key_store import Scope
from tests.ch04.harness import Start, audio_of
from tests.ch09.harness import secured

LISTEN = "/v1/listen?encoding=linear16&sample_rate=16000"


def test_each_key_check_and_each_token_verification_is_timed(
    tmp_path: Path,
) -> None:
    keys, tokens = credential_costs_us(tmp_path, rounds=3)
    assert len(keys) == len(tokens) == 3
    assert all(us > 0 for us in keys + tokens)
    figures = validate("ch09_security", credential_figures(rounds=2))
    assert set(figures) == {"key_verify_p99_us", "jwt_verify_p99_us"}


async def test_handshakes_storms_and_latencies_are_counted(
    start_server: Start, tmp_path: Path,
) -> None:
    async with secured(start_server,
                       f"sqlite:///{tmp_path}/keys.db") as service:
        url = service.running.url
        headers = {"Authorization": "Token " + service.store.create(
            "acme", [Scope.LISTEN]).key}
        assert await handshakes(url + LISTEN, headers, 5, 2) == {101: 5}
        stormed = await storm(url + LISTEN, {}, per_second=4, seconds=1)
        assert stormed == {401: 4}  # no key: each answered, refused
        during: list[int] = []

        async def meanwhile() -> None:
            during.append(len(service.running.server.admitted))

        latencies = await result_latencies_ms(
            url, headers["Authorization"].split()[1],
            [audio_of("low_latency"), audio_of("call_back")],
            realtime=False, during=meanwhile)
    assert during == [2]  # both streams were open when it ran
    assert latencies and all(ms >= 0 for ms in latencies)


async def test_the_service_figures_are_named_finite_numbers() -> None:
    figures = validate("ch09_security", await service_figures(
        handshake_count=4, fixtures=("low_latency",), per_second=3,
        realtime=False))
    assert set(figures) == {
        "handshakes_per_cpu_s_with_auth",
        "handshakes_per_cpu_s_without_auth",
        "handshakes_per_s_with_auth_vs_without",
        "result_p99_ms_without_storm", "result_p99_ms_during_storm",
        "storm_refused_share"}
    assert all(math.isfinite(v) and v >= 0 for v in figures.values())
    assert figures["storm_refused_share"] <= 1

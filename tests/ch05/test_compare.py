"""The three transports compared: the byte counter, then a short run."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from ch05_protocols.byte_relay import ByteRelay
from ch05_protocols.compare import compare, figures, plot, table

WAIT_S = 10.0


async def test_relay_counts_exactly_the_bytes_that_pass() -> None:
    payload = bytes(range(256)) * 40  # 10,240 bytes
    reply = b"heard 10240 bytes"

    async def answer(reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(len(payload))
        writer.write(reply)
        await writer.drain()
        writer.close()

    service = await asyncio.start_server(answer, "127.0.0.1", 0)
    relay = ByteRelay(service.sockets[0].getsockname()[1], chunk_bytes=999)
    await relay.start()
    try:
        async with asyncio.timeout(WAIT_S):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", relay.port)
            writer.write(payload)
            await writer.drain()
            assert await reader.read() == reply  # to the service's close
            writer.close()
    finally:
        await relay.stop()
        service.close()
    assert (relay.counted.up, relay.counted.down) == (10_240, len(reply))


async def test_a_short_run_of_each_transport_gives_finite_figures(
        tmp_path: Path) -> None:
    async with asyncio.timeout(60):
        results = await compare(grid=(2,), bisections=0, warmup_s=1.0,
                                measure_s=2.0, audio_s=4.0)
    found = figures(results)
    assert all(math.isfinite(v) for v in found.values())
    binary = found["wire_bytes_per_audio_s_ws_binary"]
    # 32,000 bytes of audio a second, and the framing around them.
    assert 32_000 < binary < 34_000
    # Base64: four characters for three bytes, plus the JSON around them.
    assert 1.25 <= found["wire_bytes_per_audio_s_ws_base64"] / binary <= 1.45
    # Protobuf carries the bytes as they are: a tag and a length.
    assert abs(found["wire_bytes_per_audio_s_grpc"] / binary - 1) <= 0.15
    for transport in ("ws_binary", "ws_base64", "grpc"):
        assert found[f"capacity_streams_{transport}"] == 2
        assert found[f"p99_ms_{transport}_at_2"] <= 100
        # Ticks of 10 ms: the short run at pace is long enough to show.
        assert found[f"server_cpu_s_per_audio_s_{transport}_at_2"] > 0
    assert "ws_base64" in table(results)
    plot(results, tmp_path / "compare.png")
    assert (tmp_path / "compare.png").stat().st_size > 0

"""`python -m examples.probe`, the containers' healthcheck: ready is
HTTP 200 or gRPC health SERVING; anything else exits 1 with why."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ch04_streaming.mock_matcher import Lexicon
from examples.probe import main
from tests.ch05.grpc_harness import serving


class Readyz(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/readyz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Readyz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return int(unused.getsockname()[1])


def test_http_ready_is_200(http_port: int,
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main([f"http://127.0.0.1:{http_port}/readyz"]) == 0
    assert main([f"http://127.0.0.1:{http_port}/draining"]) == 1
    assert "HTTP 503" in capsys.readouterr().err
    assert main([f"http://127.0.0.1:{closed_port()}/readyz"]) == 1
    assert "refused" in capsys.readouterr().err.lower()


async def test_grpc_ready_is_serving(
        lexicon: Lexicon, capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(lexicon, ready=False) as running:
        url = f"grpc://127.0.0.1:{running.built.server.port}"
        loading = await asyncio.to_thread(main, [url])
        await running.recognizer.start()
        stub: Any = health_pb2_grpc.HealthStub(running.channel)
        async for reply in stub.Watch(health_pb2.HealthCheckRequest(),
                                      timeout=10):
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                break
        ready = await asyncio.to_thread(main, [url])
    assert loading == 1 and ready == 0
    assert "NOT_SERVING" in capsys.readouterr().err


def test_a_url_of_another_kind_is_refused() -> None:
    with pytest.raises(SystemExit) as refused:
        main(["ftp://127.0.0.1/readyz"])
    assert refused.value.code == 2

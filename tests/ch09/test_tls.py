"""TLS on every port, against certificates made for this test run.

`trustme` makes a CA and the certificates it signs into `tmp_path`,
and a second CA that nobody here trusts (`tls_harness.py`). The
WebSocket port (wss://,
and https:// for its plain routes) takes TLS 1.3 only: the official
Deepgram SDK streams through it, a TLS 1.2 client is refused in the
handshake while others go on being served, and a plain ws:// client
gets nothing. The gRPC port, served as `serve` serves it (a TLS
terminator in front of a loopback gRPC port), streams over TLS 1.3,
refuses a TLS 1.2 client, and under mutual TLS turns away a caller
without a certificate, or with one from another CA.
"""

from __future__ import annotations

import asyncio
import ssl
from argparse import Namespace
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import httpx
import pytest
from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import ListenV1Results
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.auth import ApiKeys
from ch04_streaming.client import DIALECTS, load_audio, stream
from ch04_streaming.engine import LocalMatching, MockRecognizer
from ch04_streaming.mock_matcher import Lexicon
from ch05_protocols.app import build_grpc_server
from ch05_protocols.settings import GrpcSettings
from ch09_security.__main__ import main
from ch09_security.grpc_port import open_grpc_port
from ch09_security.tls import (
    TlsConfigError,
    TlsFiles,
    load_server_tls,
    server_context,
    tls_files,
)
from tests.ch04.harness import KEY, Running, Start, audio_of, reference
from tests.ch05.grpc_harness import TIMEOUT_S
from tests.ch09.tls_harness import (
    GrpcOverTls,
    Pki,
    get,
    make_pki,
    tls_1_2_only,
)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


@pytest.fixture
def trusting_the_ca(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every OpenSSL default context of this process trusts the test CA
    (and only it), as SSL_CERT_FILE makes any client do: the way to
    point a client that takes no CA of its own, such as an SDK."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    return pki.ca


@asynccontextmanager
async def served_over_tls(start_server: Start, pki: Pki
                          ) -> AsyncIterator[Running]:
    async with start_server(ssl=server_context(pki.server)) as running:
        yield running


async def test_the_deepgram_sdk_streams_over_wss(
    start_server: Start, pki: Pki, trusting_the_ca: Path,
) -> None:
    async with served_over_tls(start_server, pki) as running:
        assert running.url.startswith("wss://")
        environment = DeepgramClientEnvironment(
            base=running.http, production=running.url,
            agent=running.url, agent_rest=running.http)
        client = AsyncDeepgramClient(api_key=KEY, environment=environment)
        audio = load_audio(audio_of("quick_brown_fox")).payload
        results: list[ListenV1Results] = []
        async with client.listen.v1.connect(
            model="nova-3", encoding="linear16", sample_rate="16000",
        ) as connection:

            async def send() -> None:
                for chunk in range(0, len(audio), 3_200):  # 100 ms
                    await connection.send_media(audio[chunk:chunk + 3_200])
                await connection.send_close_stream()

            sender = asyncio.create_task(send())
            async with asyncio.timeout(30):
                async for message in connection:
                    if isinstance(message, ListenV1Results):
                        results.append(message)
            await sender
    said = [r.channel.alternatives[0].transcript for r in results
            if r.is_final and r.channel.alternatives[0].transcript]
    assert " ".join(said) == reference("quick_brown_fox")


async def test_https_probes_answer_a_client_that_trusts_the_ca(
    start_server: Start, pki: Pki,
) -> None:
    async with served_over_tls(start_server, pki) as running:
        assert running.http.startswith("https://")
        ready = await get(f"{running.http}/readyz", pki.ca)
        metrics = await get(f"{running.http}/metrics", pki.ca)
        with pytest.raises(httpx.ConnectError,
                           match="CERTIFICATE_VERIFY_FAILED"):
            await get(f"{running.http}/readyz", pki.stranger_ca)
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    assert metrics.status_code == 200


async def test_a_tls_1_2_client_is_refused_and_others_are_served(
    start_server: Start, pki: Pki, trusting_the_ca: Path,
) -> None:
    listen = "/v1/listen?encoding=linear16&sample_rate=16000"
    headers = {"Authorization": f"Token {KEY}"}
    async with served_over_tls(start_server, pki) as running:
        # asyncio's TLS server drops a failed handshake without sending
        # its alert: the client sees the handshake cut off (a reset, or
        # an EOF the ssl module reports), never a connection.
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            async with connect(running.url + listen, ssl=tls_1_2_only(
                    pki.ca), additional_headers=headers, open_timeout=10):
                pass
        # The same client allowed 1.3 as well is served, and gets 1.3.
        either = ssl.create_default_context(cafile=pki.ca)
        either.minimum_version = ssl.TLSVersion.TLSv1_2
        async with connect(running.url + listen, ssl=either,
                           additional_headers=headers) as socket:
            tls = socket.transport.get_extra_info("ssl_object")
            assert tls.version() == "TLSv1.3"
        report = await stream(running.url, DIALECTS["deepgram"], KEY,
                              load_audio(audio_of("weather_forecast")))
    assert report.transcript == reference("weather_forecast")


async def test_a_plain_ws_client_gets_no_stream_from_the_tls_port(
    start_server: Start, pki: Pki,
) -> None:
    async with served_over_tls(start_server, pki) as running:
        plain = running.url.replace("wss://", "ws://", 1)
        with pytest.raises(InvalidMessage):
            async with connect(
                    f"{plain}/v1/listen",
                    additional_headers={"Authorization": f"Token {KEY}"},
                    open_timeout=10):
                pass
        ready = await get(f"{running.http}/readyz", pki.ca)
    assert ready.status_code == 200  # and it goes on serving TLS


@asynccontextmanager
async def grpc_over_tls(lexicon: Lexicon, files: TlsFiles
                        ) -> AsyncIterator[GrpcOverTls]:
    recognizer = MockRecognizer(LocalMatching(lexicon),
                                Accelerator(PROFILES["zero"]))
    built = build_grpc_server(
        GrpcSettings(shutdown_grace_s=2.0), keys=ApiKeys.of(KEY),
        recognizer=recognizer)
    grpc_port = await open_grpc_port(built.server, "127.0.0.1", 0,
                                     load_server_tls(files).grpc)
    await recognizer.start()
    try:
        yield GrpcOverTls(grpc_port.port)
    finally:
        await grpc_port.shutdown()


async def test_grpc_streams_over_tls_to_a_client_that_trusts_the_ca(
    lexicon: Lexicon, pki: Pki,
) -> None:
    async with grpc_over_tls(lexicon, pki.server) as server:
        assert await server.transcript(pki.ca) == (
            reference("quick_brown_fox"))
        with pytest.raises(grpc.aio.AioRpcError) as doubted:
            await server.transcript(pki.stranger_ca)
    assert doubted.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("who", ["no certificate", "another CA's"])
async def test_mutual_tls_turns_away_callers_without_our_certificate(
    lexicon: Lexicon, pki: Pki, who: str,
) -> None:
    caller = None if who == "no certificate" else pki.stranger
    async with grpc_over_tls(lexicon, pki.mutual) as server:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await server.transcript(pki.ca, caller)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # The refusal is the caller's alone: a service that holds our
        # certificate streams on.
        assert await server.transcript(pki.ca, pki.client) == (
            reference("quick_brown_fox"))


async def negotiated(port: int, context: ssl.SSLContext) -> str:
    """The TLS version a handshake with the port settles on."""
    context.set_alpn_protocols(["h2"])  # as a gRPC client asks
    _, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=context), TIMEOUT_S)
    version: str = writer.get_extra_info("ssl_object").version()
    writer.transport.abort()  # no HTTP/2 follows: no polite goodbye
    return version


async def test_the_grpc_port_refuses_tls_1_2_and_negotiates_1_3(
    lexicon: Lexicon, pki: Pki,
) -> None:
    """grpcio's own TLS takes no minimum version; the terminator in
    front of the gRPC server does: a client that offers only TLS 1.2,
    with the right certificate, gets no connection, while one that
    offers both is given 1.3, and a gRPC call streams on."""
    async with grpc_over_tls(lexicon, pki.mutual) as server:
        older = tls_1_2_only(pki.ca)
        older.load_cert_chain(pki.client.cert, pki.client.key)
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await negotiated(server.port, older)
        either = ssl.create_default_context(cafile=pki.ca)
        either.minimum_version = ssl.TLSVersion.TLSv1_2
        either.load_cert_chain(pki.client.cert, pki.client.key)
        assert await negotiated(server.port, either) == "TLSv1.3"
        assert await server.transcript(pki.ca, pki.client) == (
            reference("quick_brown_fox"))


def flags(cert: str | None = None, key: str | None = None,
          ca: str | None = None) -> Namespace:
    return Namespace(tls_cert=cert, tls_key=key, tls_ca=ca)


@pytest.mark.parametrize("given, error", [
    ({"cert": "server.pem"}, "--tls-cert and --tls-key go together"),
    ({"key": "server-key.pem"}, "--tls-cert and --tls-key go together"),
    ({"ca": "ca.pem"}, "--tls-ca needs --tls-cert and --tls-key"),
])
def test_incomplete_tls_flags_are_refused(given: dict[str, str],
                                          error: str) -> None:
    with pytest.raises(TlsConfigError, match=error):
        tls_files(flags(**given))


def test_no_tls_flags_mean_no_tls() -> None:
    assert tls_files(flags()) is None


def unusable(pki: Pki) -> Iterator[TlsFiles]:
    yield TlsFiles(pki.server.cert, pki.server.key.with_name("missing"))
    yield TlsFiles(pki.server.cert, pki.client.key)  # not its key
    yield TlsFiles(pki.server.cert, pki.server.key, pki.server.key)


def test_unusable_tls_files_stop_the_start_with_the_reason(pki: Pki
                                                           ) -> None:
    for files in unusable(pki):
        with pytest.raises(TlsConfigError, match="cannot use the TLS"):
            load_server_tls(files)
    assert load_server_tls(pki.mutual).mutual


@pytest.mark.parametrize("tls_flags, error", [
    (["--tls-cert", "server.pem"], "--tls-cert and --tls-key go together"),
    (["--tls-cert", "absent.pem", "--tls-key", "absent-key.pem"],
     "cannot use the TLS files: [Errno 2] No such file"),
])
def test_serve_stops_before_listening_when_tls_is_misconfigured(
    tls_flags: list[str], error: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = f"sqlite:///{tmp_path}/keys.sqlite3"
    assert main(["serve", "--port", "0", "--database-url", database,
                 *tls_flags]) == 2
    assert capsys.readouterr().err.startswith(f"error: {error}")
    assert not (tmp_path / "keys.sqlite3").exists()  # nothing opened

"""Certificates for a test run, and the TLS clients that tests use.

`make_pki` has `trustme` make a CA and the certificates it signs, and a
second CA that nobody trusts, into a folder of the test's own.
`GrpcOverTls` streams a fixture to a gRPC port over TLS, showing a
client certificate if given one; `get` makes one HTTPS request.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import trustme

from ch05_protocols.speech.v1.speech_pb2_grpc import SpeechStub
from ch09_security.tls import TlsFiles, client_context
from tests.ch04.harness import KEY
from tests.ch05.grpc_harness import (
    TIMEOUT_S,
    audio_requests,
    finals,
    fixture_audio,
    metadata,
)


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA clients trust
    server: TlsFiles  # for localhost and 127.0.0.1, no client CA
    client: Identity  # signed by the same CA, for mutual TLS
    stranger_ca: Path  # a CA nobody here trusts
    stranger: Identity  # a client certificate it signed

    @property
    def mutual(self) -> TlsFiles:
        """The server's files, and the CA its gRPC callers need."""
        return TlsFiles(self.server.cert, self.server.key, self.ca)


def write_identity(ca: trustme.CA, name: str, folder: Path) -> Identity:
    issued = ca.issue_cert(name)
    identity = Identity(folder / f"{name}.pem", folder / f"{name}-key.pem")
    issued.cert_chain_pems[0].write_to_path(str(identity.cert))
    issued.private_key_pem.write_to_path(str(identity.key))
    return identity


def make_pki(folder: Path) -> Pki:
    ca, stranger_ca = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    stranger_ca.cert_pem.write_to_path(str(folder / "stranger-ca.pem"))
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
    server.private_key_pem.write_to_path(str(folder / "server-key.pem"))
    (folder / "stranger").mkdir()
    return Pki(
        folder / "ca.pem",
        TlsFiles(folder / "server.pem", folder / "server-key.pem"),
        write_identity(ca, "speech-client", folder),
        folder / "stranger-ca.pem",
        write_identity(stranger_ca, "speech-client", folder / "stranger"))


def tls_1_2_only(ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


async def get(url: str, trusted: Path) -> httpx.Response:
    """One GET on a connection of its own: the server answers a plain
    HTTP request on its WebSocket port, then closes the connection."""
    async with httpx.AsyncClient(verify=client_context(trusted),
                                 timeout=10) as client:
        return await client.get(url)


@dataclass
class GrpcOverTls:
    port: int

    def channel(self, roots: Path, client: Identity | None = None
                ) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=roots.read_bytes(),
            private_key=client.key.read_bytes() if client else None,
            certificate_chain=client.cert.read_bytes() if client else None)
        return grpc.aio.secure_channel(f"127.0.0.1:{self.port}",
                                       credentials)

    async def transcript(self, roots: Path, client: Identity | None = None,
                         key: str = KEY) -> str:
        """One fixture streamed over a channel of its own."""
        async with self.channel(roots, client) as channel:
            call = SpeechStub(channel).StreamingRecognize(
                iter(audio_requests(fixture_audio("quick_brown_fox"))),
                metadata=metadata(key), timeout=TIMEOUT_S)
            return finals([response async for response in call])

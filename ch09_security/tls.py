"""TLS on every port: the contexts, and the files they are made from.

Chapter 9, "Securing audio data: ... in transit (TLS 1.3)". One server
context serves wss:// and https:// (the plain routes of the streaming
port, such as `/readyz` and `/metrics`, and the HTTP API) with TLS 1.3
as its minimum, so a TLS 1.2 client is refused during the handshake.
The gRPC port has the same floor, from a context of its own that the
TLS terminator in front of the gRPC server listens with
(`tls_terminator.py`; grpcio's own TLS takes no minimum version): it
offers HTTP/2 by ALPN, as gRPC needs, and given a CA it admits only
callers holding a certificate that CA issued (mutual TLS, service to
service). Paths come from `--tls-cert`, `--tls-key` and `--tls-ca`, or
from `TLS_CERT_FILE`, `TLS_KEY_FILE` and `TLS_CA_FILE`.
"""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CERT_VARIABLE = "TLS_CERT_FILE"
KEY_VARIABLE = "TLS_KEY_FILE"
CA_VARIABLE = "TLS_CA_FILE"


class TlsConfigError(ValueError):
    """The TLS flags or files cannot be used."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path  # the server's certificate (and chain), PEM
    key: Path  # its private key, PEM
    client_ca: Path | None = None  # gRPC callers must hold its certs


@dataclass(frozen=True)
class ServerTls:
    """What the service listens with: a context for each kind of port."""

    context: ssl.SSLContext  # streaming and API ports: wss://, https://
    grpc: ssl.SSLContext  # the gRPC port's terminator: h2, mutual TLS
    mutual: bool  # gRPC callers must show a client certificate


def add_arguments(parser: argparse.ArgumentParser,
                  env: Mapping[str, str]) -> None:
    parser.add_argument("--tls-cert", default=env.get(CERT_VARIABLE),
                        help="serve over TLS with this certificate, PEM "
                        f"(env {CERT_VARIABLE})")
    parser.add_argument("--tls-key", default=env.get(KEY_VARIABLE),
                        help=f"its private key, PEM (env {KEY_VARIABLE})")
    parser.add_argument("--tls-ca", default=env.get(CA_VARIABLE),
                        help="mutual TLS on the gRPC port: callers need a "
                        f"certificate from this CA (env {CA_VARIABLE})")


def tls_files(args: argparse.Namespace) -> TlsFiles | None:
    """The files the flags name; None when TLS is not asked for."""
    cert, key, ca = args.tls_cert, args.tls_key, args.tls_ca
    if not cert and not key:
        if ca:
            raise TlsConfigError("--tls-ca needs --tls-cert and --tls-key")
        return None
    if not cert or not key:
        raise TlsConfigError("--tls-cert and --tls-key go together")
    return TlsFiles(Path(cert), Path(key), Path(ca) if ca else None)


# --8<-- [start:tls_context]
def server_context(files: TlsFiles) -> ssl.SSLContext:
    """wss:// and https://: TLS 1.3, or no connection at all."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(files.cert, files.key)
    return context


def client_context(ca: Path, cert: Path | None = None,
                   key: Path | None = None) -> ssl.SSLContext:
    """Trusts `ca` only, checks the server's name, shows `cert`."""
    context = ssl.create_default_context(cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def grpc_context(files: TlsFiles) -> ssl.SSLContext:
    """The gRPC port: the same floor, HTTP/2 by ALPN, and with a client
    CA, no connection for a caller without a certificate it issued."""
    context = server_context(files)
    context.set_alpn_protocols(["h2"])
    if files.client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(files.client_ca)
    return context
# --8<-- [end:tls_context]


def load_server_tls(files: TlsFiles) -> ServerTls:
    """Both from the same files, each checked now rather than at the
    first handshake: a wrong path or a key that does not match its
    certificate stops the start with the reason."""
    try:
        context, grpc = server_context(files), grpc_context(files)
    except OSError as error:  # ssl.SSLError is one too
        raise TlsConfigError(f"cannot use the TLS files: {error}") from error
    return ServerTls(context, grpc, files.client_ca is not None)

"""`python -m ch09_security certs`: TLS certificates for a development
machine.

Chapter 9, "Securing audio data: ... in transit (TLS 1.3)". Writes a
local CA, a server certificate for `localhost` and `127.0.0.1` (more
names with `--name`, e.g. a compose service's host name) and a client
certificate for mutual TLS into `--out` (default `build/tls`), then
prints the command that serves with them. Production certificates come
from the organisation's CA or an ACME issuer, never from this.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ch09_security.local_ca import DEFAULT_NAMES, make_certificates


def positive_days(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of days")
    return int(text)


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="a local CA, a server and a client certificate",
        description="TLS certificates for development: a CA, a server "
        "certificate and a client certificate (mutual TLS). The CA's "
        "key is not kept: run again for a new set.")
    parser.add_argument("--out", type=Path, default=Path("build/tls"),
                        help="directory to write to (default %(default)s)")
    parser.add_argument("--name", action="append", dest="names",
                        default=[], help="another host name or IP "
                        "address for the server certificate; repeat for "
                        f"several ({' and '.join(DEFAULT_NAMES)} are "
                        "always in)")
    parser.add_argument("--days", type=positive_days, default=90,
                        help="how long they are valid (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    try:
        names = list(dict.fromkeys([*DEFAULT_NAMES, *args.names]))
        files = make_certificates(args.out, names, args.days)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"CA (give it to clients)      {files.ca}")
    print(f"server certificate and key   {files.server_cert} "
          f"{files.server_key}")
    print(f"client certificate and key   {files.client_cert} "
          f"{files.client_key}")
    print("\nServe over TLS (wss://, https://; gRPC with mutual TLS):\n"
          f"  python -m ch09_security serve --tls-cert {files.server_cert}"
          f" --tls-key {files.server_key} --tls-ca {files.ca}"
          " --grpc-port 8209")
    return 0

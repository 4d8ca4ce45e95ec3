"""`python -m examples.probe URL`: is this service ready? Exit 0 if so.

The container healthchecks of `docker-compose.yml` and the Dockerfile
call it, since the image has no curl or grpcurl: an HTTP URL is ready
when it answers 200 (every service's `/readyz`), a `grpc://host:port`
one when gRPC's standard health service says SERVING. Anything else,
a refused connection or no answer within `--timeout-s`, exits 1 with
the reason on stderr, which Docker keeps in the container's health log.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def http_ready(url: str, timeout_s: float) -> str | None:
    """None if `url` answers 200; otherwise why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            status = answer.status
    except urllib.error.HTTPError as error:
        return f"{url}: HTTP {error.code}"
    except OSError as error:
        return f"{url}: {error}"
    return None if status == 200 else f"{url}: HTTP {status}"


def grpc_serving(address: str, timeout_s: float) -> str | None:
    """None if the gRPC health service at `address` says SERVING."""
    with grpc.insecure_channel(address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(),
                               timeout=timeout_s)
        except grpc.RpcError as error:
            return f"grpc://{address}: {error.code().name}"
    serving = health_pb2.HealthCheckResponse.SERVING
    if reply.status == serving:
        return None
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return f"grpc://{address}: {name}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.probe",
        description="Exit 0 if a service is ready: HTTP 200, or gRPC"
                    " health SERVING.")
    parser.add_argument("url", help="http://host:port/readyz or"
                        " grpc://host:port")
    parser.add_argument("--timeout-s", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.url.startswith("grpc://"):
        problem = grpc_serving(args.url.removeprefix("grpc://"),
                               args.timeout_s)
    elif args.url.startswith(("http://", "https://")):
        problem = http_ready(args.url, args.timeout_s)
    else:
        parser.error(f"not an http:// or grpc:// URL: {args.url}")
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

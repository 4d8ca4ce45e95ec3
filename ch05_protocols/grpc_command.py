"""`python -m ch05_protocols grpc`: the gRPC speech service.

Chapter 5, "gRPC bidirectional streaming". Flags (and `CH05_<NAME>`
variables) set the gRPC service's limits; the engine's settings are
chapter 4's `CH04_<NAME>` variables. The server listens at once and
reports NOT_SERVING on its health service until the model is warm.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from ch05_protocols.settings import add_flags, from_args


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="streaming recognition over gRPC (speech.v1.Speech)",
        description="Bidirectional streaming recognition over gRPC, on "
        "chapter 4's session core, with health checking and reflection. "
        "Engine settings come from CH04_* variables (see python -m "
        "ch04_streaming -h).")
    add_flags(parser, os.environ)


def run(args: argparse.Namespace) -> int:
    from ch05_protocols import app

    settings = from_args(args, os.environ)
    return asyncio.run(app.serve(settings))


def main(argv: Sequence[str]) -> int:
    """`python -m ch05_protocols grpc [flags]`."""
    parser = argparse.ArgumentParser(prog="python -m ch05_protocols")
    add_parser(parser.add_subparsers(required=True), "grpc")
    args = parser.parse_args(["grpc", *argv])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    return run(args)

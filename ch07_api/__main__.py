"""`python -m ch07_api`: the API service on port 8007.

Chapter 7. Flags and `CH07_<NAME>` variables set the limits, the
deadline and the store; `--help` lists them. uvicorn serves the app
that `create_app()` builds; on SIGTERM it stops accepting, lets open
requests and streams finish, then the app stops its pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator, Sequence

import uvicorn

from ch04_streaming.app import event_loop_factory
from ch07_api.app import create_app
from ch07_api.settings import parse_api_settings

GRACEFUL_S = 10


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_api_settings(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    app = create_app(settings)
    # Bound here, before uvicorn starts: with --port 0 the line below
    # names the port the system chose, for the tools that read it.
    listener = socket.create_server((settings.host, settings.port))
    port = listener.getsockname()[1]
    url = f"http://{settings.host}:{port}"
    if app.state.dev_key:
        print(f"SPEECH_API_KEYS is not set; development key: "
              f"{app.state.dev_key}", flush=True)
    print(f"listening on {url} (/v1/audio/transcriptions, /v1/models,"
          " /v1/transcripts, /v1/operations, /v2/transcripts, /docs,"
          " /readyz, /metrics)", flush=True)
    config = uvicorn.Config(app, log_level="warning", http="httptools",
                            timeout_graceful_shutdown=GRACEFUL_S)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve(Server(config), listener))
    return 0


class Server(uvicorn.Server):
    """uvicorn's server, with this service's own signal handling: a
    drained service exits 0 instead of dying of the signal again."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(server: Server, listener: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # A first signal drains; a second stops at once.
        loop.add_signal_handler(signum, server.handle_exit, signum, None)
    await server.serve(sockets=[listener])


if __name__ == "__main__":
    sys.exit(main())

"""`python -m ch04_streaming`: flags -> settings -> server -> run.

Starts listening at once so `/healthz` answers during the cold start,
while `/readyz` and stream requests answer 503 until the model is ready.
SIGTERM or Ctrl-C drains: open utterances finish, streams close with
1001, and the process exits within the shutdown grace.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

from ch04_streaming.app import build_server
from ch04_streaming.engine import Recognizer
from ch04_streaming.server import SpeechServer
from ch04_streaming.settings import parse_settings

log = logging.getLogger("ch04_streaming")


async def serve(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv)
    built = build_server(settings)
    server = built.server
    await server.start(settings.host, settings.port)
    url = f"http://{settings.host}:{server.port}"
    log.info("event=listening url=%s profile=%s", url, settings.profile)
    if built.dev_key:
        print(f"SPEECH_API_KEYS is not set; development key: "
              f"{built.dev_key} (browser: {url}/?key={built.dev_key})",
              flush=True)
    print(f"listening on {url} (Deepgram /v1/listen, AssemblyAI /v3/ws,"
          f" browser client /)", flush=True)
    await run_until_signalled(built.recognizer, server, server.shutdown)
    log.info("event=stopped")
    return 0


async def run_until_signalled(recognizer: Recognizer, server: SpeechServer,
                              drain: Callable[[], Awaitable[None]]) -> None:
    """Warm the model up and serve until SIGTERM or Ctrl-C; then drain."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Start-up objects (the lexicon, modules) live for the whole run:
    # move them out of the garbage collector's sight, so its full passes
    # stay short and do not stall every stream at once.
    gc.freeze()
    warmup = asyncio.create_task(recognizer.start())
    await stop.wait()
    log.info("event=draining streams=%d", len(server.handlers))
    warmup.cancel()
    await drain()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS): a faster event loop
    for the same asyncio code; the standard loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(serve())


if __name__ == "__main__":
    sys.exit(main())

"""`python -m ch04_streaming`: flags -> settings -> server -> run.

Starts listening at once so `/healthz` answers during the cold start,
while `/readyz` and stream requests answer 503 until the model is ready.
SIGTERM or Ctrl-C drains: open utterances finish, streams close with
1001, and the process exits within the shutdown grace.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from ch04_streaming.app import (
    build_server,
    event_loop_factory,
    run_until_signalled,
)
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


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(serve())


if __name__ == "__main__":
    sys.exit(main())

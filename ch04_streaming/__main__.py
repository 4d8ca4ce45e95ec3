"""`python -m ch04_streaming`: flags -> settings -> server -> run.

Starts listening at once so `/healthz` answers during the cold start,
while `/readyz` and stream requests answer 503 until the model is ready.
SIGTERM or Ctrl-C drains: open utterances finish, streams close with
1001, and the process exits within the shutdown grace. With
`--warm-pool N`, chapter 3's warm pool serves instead: one prepared
parent, a serving worker and N warm spares forked from it.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from ch03_gpu.phases import mark


def main() -> int:
    mark("main")
    # Imported here rather than at the top: the mark above then tells
    # the interpreter's start from ours (chapter 3, "Cold start
    # anatomy"), and the matcher's worker process, which imports this
    # module by name to start, skips the server it never runs.
    from ch04_streaming import app
    from ch04_streaming.settings import parse_settings

    mark("imported")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    settings = parse_settings()
    if settings.warm_pool:
        return app.serve_warm_pool(settings)
    with asyncio.Runner(loop_factory=app.event_loop_factory()) as runner:
        return runner.run(app.serve(settings))


if __name__ == "__main__":
    sys.exit(main())

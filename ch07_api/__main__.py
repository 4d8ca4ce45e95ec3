"""`python -m ch07_api`: the API service on port 8007.

Chapter 7. Flags and `CH07_<NAME>` variables set the limits, the
deadline and the store; `--help` lists them. uvicorn serves the app
that `create_app()` builds; on SIGTERM it stops accepting, lets open
requests and streams finish, then the app stops its pipeline.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import uvicorn

from ch07_api.app import create_app
from ch07_api.settings import parse_api_settings

GRACEFUL_S = 10


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_api_settings(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    app = create_app(settings)
    url = f"http://{settings.host}:{settings.port}"
    if app.state.dev_key:
        print(f"SPEECH_API_KEYS is not set; development key: "
              f"{app.state.dev_key}", flush=True)
    print(f"listening on {url} (/v1/audio/transcriptions, /v1/models,"
          " /v1/transcripts, /v1/operations, /v2/transcripts, /docs,"
          " /readyz, /metrics)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port,
                log_level="warning", timeout_graceful_shutdown=GRACEFUL_S,
                loop="uvloop", http="httptools")
    return 0


if __name__ == "__main__":
    sys.exit(main())

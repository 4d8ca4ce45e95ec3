"""`python -m ch06_pipeline`: the pipeline service.

Chapter 6. Chapter 4's WebSocket dialects, `/readyz` and `/metrics` on
port 8006 and chapter 5's gRPC service on 50006, over one cross-stream
batching scheduler. Flags and `CH06_<NAME>` variables set the batching,
the caps and the degradation; `--help` lists them. Bad flags stop with
exit status 2 and a message naming the flag.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from ch04_streaming.app import event_loop_factory
from ch06_pipeline.app import serve
from ch06_pipeline.settings import parse_pipeline_settings


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_pipeline_settings(
        sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())

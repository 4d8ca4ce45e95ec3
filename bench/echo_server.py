"""The baseline: a bare WebSocket server that echoes every frame.

What the chapter 4 service is measured against: the same library, the
same event loop, the same limits, and no work at all per frame. The
difference in capacity is the price of VAD, recognition and results.

    python -m bench.echo_server [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ch04_streaming.__main__ import event_loop_factory


async def echo(connection: ServerConnection) -> None:
    try:
        async for frame in connection:
            await connection.send(frame)
    except ConnectionClosed:
        pass


async def run(port: int) -> None:
    async with serve(echo, "127.0.0.1", port, compression=None,
                     max_size=256 * 1024) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on ws://127.0.0.1:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo_server")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The chapter 12 stop of the tour: scaling out on Ray Serve.

Sizes a fleet for a peak (`python -m ch12_scaling plan`), replays a day
through the autoscaling policies (`autoscale-sim --quick`) and prices a
day on spot capacity (`spot-sim`). Then starts `python -m ch12_scaling
serve` with two replicas on a local Ray instance, streams a fixture
through the Serve proxy, preempts the replica serving a second stream
(AWS's notice, written where that replica looks for it) and shows the
stream's finals, its 1001 close and the reconnect landing on the other
replica; stops the fleet with SIGTERM. Last, the routing comparison as
`make bench` measured it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from examples.fleet_client import (
    finals_until_close,
    open_stream,
    replica_of,
    running_fleet,
    send_paced,
)
from examples.service import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results" / "ch12_scaling.json"


def command(*args: str, show: int = 14) -> None:
    print(f"\n$ python -m ch12_scaling {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "ch12_scaling", *args],
                          cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True)
    lines = done.stdout.rstrip().splitlines()
    for line in lines[:show]:
        print(f"  {line}")
    if len(lines) > show:
        print(f"  ... ({len(lines) - show} more lines)")


async def until_open(url: str, key: str) -> ClientConnection:
    """A stream, once a replica is warm (a 503 while models load)."""
    async with asyncio.timeout(60):
        while True:
            try:
                return await open_stream(url, key)
            except InvalidStatus as refused:
                if refused.response.status_code != 503:
                    raise
                await asyncio.sleep(0.2)


async def fleet() -> None:
    key = "demo-" + secrets.token_hex(8)
    print("\n$ python -m ch12_scaling serve --port 0 --replicas 2",
          flush=True)
    async with running_fleet("--replicas", "2", replicas=2,
                             env={"SPEECH_API_KEYS": key}) as running:
        url = running.url
        print(f"  listening on {url} on Ray Serve, two replicas",
              flush=True)
        async with await until_open(url, key) as socket:
            sender = asyncio.create_task(send_paced(socket, "low_latency"))
            said = await finals_until_close(socket)
            await sender
        print(f"  [replica {replica_of(socket)}] {' '.join(said)}")
        await preempted_stream(url, key, running.lab)
    print(f"  fleet stopped on SIGTERM (exit"
          f" {running.service.process.returncode})")


async def preempted_stream(url: str, key: str, lab: Path) -> None:
    async with await until_open(url, key) as socket:
        replica = replica_of(socket)
        sender = asyncio.create_task(send_paced(socket, "support_call"))
        heard = asyncio.create_task(finals_until_close(socket))
        await asyncio.sleep(4.0)
        when = datetime.now(UTC) + timedelta(seconds=12)
        (lab / replica).write_text(json.dumps(
            {"action": "terminate", "time": when.isoformat()}))
        print(f"  AWS notice to replica {replica}: terminate at"
              f" {when:%H:%M:%S} (12 s)", flush=True)
        said = await heard
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    print(f"  [replica {replica}] {' | '.join(said)}")
    print(f"  closed {socket.close_code} {socket.close_reason}")
    async with await until_open(url, key) as again:
        sender = asyncio.create_task(send_paced(again, "quick_brown_fox"))
        said = await finals_until_close(again)
        await sender
    print(f"  reconnected to replica {replica_of(again)}:"
          f" {' '.join(said)}")


def routing_table() -> None:
    print("\nRouting a skewed load on a mixed fleet (make bench):")
    if not RESULTS.exists():
        print("  no results yet: make bench")
        return
    found = json.loads(RESULTS.read_text())
    print("  router         p95 ms  p99 ms  refused  streams per replica"
          " at the peak")
    for router in ("gpu_aware", "power_of_two", "round_robin"):
        peak = found[f"routing_peak_streams_{router}"]
        print(f"  {router.replace('_', '-'):<13}"
              f"{found[f'routing_p95_ms_{router}']:>7,.0f}"
              f"{found[f'routing_p99_ms_{router}']:>8,.0f}"
              f"{found[f'routing_refused_{router}']:>9}"
              f"  {' / '.join(str(n) for n in peak.values())}")
    machine = found["machine"]
    print(f"  p99 final through the Serve proxy"
          f" {found['serve_proxy_p99_ms_proxied']:,.0f} ms, straight to the"
          f" replica {found['serve_proxy_p99_ms_direct']:,.0f} ms."
          f" make bench at {machine['git_commit']},"
          f" {machine['recorded_at'][:10]}")


def scaling_out() -> None:
    command("plan", "--peak-streams", "2000", "--p95-ms", "300",
            "--regions", "eu,us")
    command("autoscale-sim", "--quick", show=20)
    command("spot-sim")
    asyncio.run(fleet())
    routing_table()


if __name__ == "__main__":
    scaling_out()

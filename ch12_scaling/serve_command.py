"""`python -m ch12_scaling serve`: the pipeline on a local Ray instance.

Chapter 12, "Horizontal scaling". Starts Ray on this machine
(`ray.init`, with one lab `accelerator` per replica the fleet may
have), starts Serve's proxy on `--port`, deploys the replicas, and
prints the URL once they are up (each replica warms its model after
that; the routers do not send it streams until it is warm). On SIGTERM
or Ctrl-C it deletes the application, whose replicas drain, and stops
Ray. The same code runs on a cluster: `RAY_ADDRESS` (Ray's own
variable) points `ray.init` at one instead.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import replace

import ray
from ray import serve
from ray.serve.config import HTTPOptions

from ch12_scaling.serve_app import ACCELERATOR, build_application
from ch12_scaling.settings import ServeSettings, parse_serve_settings

log = logging.getLogger("ch12_scaling")
APP_NAME = "speech"
PATHS = ("Deepgram /v1/listen, AssemblyAI /v3/ws, OpenAI /v1/realtime,"
         " /readyz, /metrics")


def start(settings: ServeSettings) -> None:
    """Ray, Serve's proxy, and the replicas: returns once they run."""
    accelerators = max(settings.replicas, settings.max_replicas)
    ray.init(num_cpus=settings.num_cpus or None,
             resources={ACCELERATOR: accelerators},
             include_dashboard=False, log_to_driver=False)
    serve.start(http_options=HTTPOptions(host=settings.host,
                                         port=settings.port))
    serve.run(build_application(settings), name=APP_NAME,
              route_prefix="/")


def stop() -> None:
    serve.delete(APP_NAME)  # the replicas drain
    serve.shutdown()  # type: ignore[no-untyped-call]
    ray.shutdown()


def free_port(host: str) -> int:
    """A port nothing listens on now. Serve's proxy takes a port
    number, not a socket, so `--port 0` is resolved here."""
    with socket.create_server((host, 0)) as listener:
        port: int = listener.getsockname()[1]
        return port


def main(argv: Sequence[str]) -> int:
    settings, dev_key = parse_serve_settings(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    made_lab = not settings.lab_dir
    if made_lab:
        lab = tempfile.mkdtemp(prefix="ch12-lab-")
        settings = replace(settings, lab_dir=lab)
    if settings.port == 0:
        settings = replace(settings, port=free_port(settings.host))
    start(settings)
    stopping = threading.Event()  # Ray's own handlers replaced here
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    if dev_key:
        print(f"SPEECH_API_KEYS is not set; development key: {dev_key}",
              flush=True)
    fleet = (f"{settings.min_replicas}-{settings.max_replicas} replicas"
             if settings.autoscaling else f"{settings.replicas} replicas")
    print(f"replicas: {settings.lab_dir}/<replica>.json; to preempt one,"
          f" write a provider's notice to {settings.lab_dir}/<replica>",
          flush=True)
    # The port line last: tools read what a service prints up to it.
    print(f"listening on http://{settings.host}:{settings.port} ({PATHS})"
          f" on Ray Serve, {fleet}, {settings.router} routing",
          flush=True)
    stopping.wait()
    log.info("event=draining")
    stop()
    if made_lab:
        shutil.rmtree(settings.lab_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

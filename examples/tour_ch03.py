"""The chapter 3 stop of the tour: the accelerator under the service.

Batching policies compared at equal p95 on the simulated device, in
virtual time (a few seconds), then the accelerators that would serve a
thousand streams within the 300 ms budget, and what an audio hour
costs on each.
"""

from __future__ import annotations

from ch03_gpu import batching_cli, size_lab


def accelerator_lab() -> None:
    print("Static, dynamic and continuous batching at equal p95"
          " (python -m ch03_gpu batching --quick):\n", flush=True)
    batching_cli.main(["--quick", "--plot", "build/demo/batching.png"])
    print("\nRight-sizing 1,000 streams within 300 ms"
          " (python -m ch03_gpu size):\n", flush=True)
    size_lab.main(["--streams", "1000", "--p95-ms", "300"])


if __name__ == "__main__":
    accelerator_lab()

"""Published GPU cold-start figures, set against our own anatomy.

Chapter 3, "Cold start anatomy". Our service starts in seconds on a
CPU; a GPU model server starts in minutes, in the same order of steps.
Each step a provider has published is listed with its figure and its
source, and with the phase of our measured anatomy it corresponds to,
so the lab can say how long each of our phases would take on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuStep:
    step: str  # of a GPU server's cold start
    ours: tuple[str, ...]  # the phases of our anatomy doing its job
    figure: str  # as published
    source: str
    note: str = ""  # how our phase differs


GPU_STEPS = (
    GpuStep("container image pull and extract",
            ("interpreter start",),
            "Llama 3.1 8B image 20.2 GB: pull 5-6 min, extract 3-4 min",
            "BentoML, 2025-04", "our code is installed: no image"),
    GpuStep("container image pull",
            ("interpreter start",),
            "17.7 GB image: pull 333 s, in parallel with the weights;"
            " 525 s in all, 258 s with the image cached",
            "AWS SageMaker, 2026-06"),
    GpuStep("image streaming",
            ("interpreter start",),
            "1-2 s", "Cloud Run GPU"),
    GpuStep("GPU and driver, CUDA context",
            ("imports",),
            "GPU + driver ~5 s; context memory 287 MB with CUDA lazy"
            " loading, 666 MB eager",
            "Cloud Run GPU; CUDA 12.2+ lazy loading (PyTorch #86509)",
            "importing a CUDA framework creates the context"),
    GpuStep("inference engine start",
            ("build and listen", "matcher process start"),
            "engine init 5-15 s; ~2 min for an 8B model's server start",
            "Cloud Run GPU; BentoML, 2025-04"),
    GpuStep("weights to GPU memory",
            ("lexicon load", "device load"),
            "168 s for the weights of a 17.7 GB image",
            "AWS SageMaker, 2026-06",
            "the device load is a sleep of --load-s"),
    GpuStep("warm-up (kernel selection, graph capture)",
            ("device warm-up", "warm-up inference"),
            "inside the engine start above; not published apart",
            "Cloud Run GPU; BentoML, 2025-04",
            "the device warm-up is a sleep of --warmup-s"),
    GpuStep("restore from a snapshot instead of starting",
            ("warm-pool takeover",),
            "GPU memory snapshots (CUDA checkpoint API): 3-12x faster"
            " starts, vLLM in 5 s; FlashBoot (Whisper): min 563 ms,"
            " P95 < 2.3 s, max 42 s",
            "Modal, 2025-07; RunPod FlashBoot",
            "a forked spare takes over a lost worker's socket"),
)

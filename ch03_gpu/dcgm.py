"""The device's metrics under the names NVIDIA's DCGM exporter uses.

Chapter 3, "Measuring GPU utilization". Dashboards and alerts written
against these names work unchanged on a real GPU behind dcgm-exporter.
They also show why utilisation misleads: `DCGM_FI_DEV_GPU_UTIL` counts
the time any work ran, so a launch-bound device reads 100% while its
tensor cores idle; `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE` shows the compute
share, and the gap between the two is what batching and CUDA graphs
win back.
"""

from __future__ import annotations

import math
import socket
import uuid
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ch03_gpu.device import Accelerator
from ch03_gpu.memory import MIB

LABELS = ("gpu", "UUID", "device", "modelName", "Hostname")


class DcgmMetrics(Collector):
    """Read the device on every scrape, as the exporter does."""

    def __init__(self, device: Accelerator, index: int = 0) -> None:
        self.device = device
        host = socket.gethostname()
        # A stable, GPU-like UUID derived from the host and index.
        gpu_id = uuid.uuid5(uuid.NAMESPACE_DNS, f"{host}/{index}")
        self.labels = [str(index), f"GPU-{gpu_id}", f"nvidia{index}",
                       device.name, host]

    def collect(self) -> Iterator[Metric]:
        busy, computing = self.device.utilisation()
        figures = [
            ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).",
             round(100 * busy)),
            *self.framebuffer(),
            ("DCGM_FI_PROF_GR_ENGINE_ACTIVE",
             "Ratio of time the graphics engine is active.", busy),
            ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
             "Ratio of cycles the tensor (HMMA) pipe is active.",
             computing),
        ]
        for name, documentation, value in figures:
            family = GaugeMetricFamily(name, documentation, labels=LABELS)
            family.add_metric(self.labels, value)
            yield family

    def framebuffer(self) -> list[tuple[str, str, float]]:
        """Memory figures, for a device whose memory is modelled."""
        memory = self.device.memory
        if not math.isfinite(memory.capacity_bytes):
            return []
        return [
            ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).",
             round(memory.used_bytes / MIB)),
            ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).",
             round(memory.free_bytes / MIB)),
        ]

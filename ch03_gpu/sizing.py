"""Right-sizing: which accelerator serves a load within a latency
budget, how many of them, and what an audio hour costs on each.

Chapter 3, "Right-sizing GPU instances". A streaming encoder's cost is
a fixed launch time plus compute per second of audio; a dynamic batcher
trades waiting for fewer launches. For each accelerator in a dated
catalogue, the compute part is scaled from the measured H200 profile by
tensor-core throughput (launches cost the same: they are the host's
work), the most streams one device holds inside the budget follows,
and with it the count and the price, on demand and on spot. Number
formats are a cost lever: fp8 halves the compute where the hardware
has it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ch03_gpu.device import CostModel
from ch03_gpu.profiles import DeviceProfile

CATALOGUE_FILE = Path(__file__).with_name("catalogue.toml")
GIB = 1024**3


class CatalogueError(ValueError):
    """A catalogue file that cannot be used, and why."""


class Offer(BaseModel):
    """One rentable GPU: its throughput, memory and price."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    memory_gib: Annotated[float, Field(gt=0)]
    tflops: dict[str, Annotated[float, Field(gt=0)]]
    instance: str
    on_demand_per_hour: Annotated[float, Field(gt=0)]
    spot_discount: Annotated[float, Field(ge=0, lt=1)]
    spot_source: str = "estimate"
    prices_read: str
    source: str

    @property
    def spot_per_hour(self) -> float:
        return self.on_demand_per_hour * (1 - self.spot_discount)


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str
    accelerators: list[Offer] = Field(min_length=1)

    def offer(self, name: str) -> Offer:
        for offer in self.accelerators:
            if offer.name == name:
                return offer
        raise CatalogueError(f"no accelerator named {name!r}")


def load_catalogue(path: Path = CATALOGUE_FILE) -> Catalogue:
    try:
        catalogue = Catalogue.model_validate(
            tomllib.loads(path.read_text()))
        catalogue.offer(catalogue.reference)
    except (OSError, tomllib.TOMLDecodeError, ValidationError,
            CatalogueError) as error:
        raise CatalogueError(f"{path}: {error}") from None
    return catalogue


# --8<-- [start:streams_per_device]
def streams_per_device(cost: CostModel, budget_s: float,
                       max_busy: float = 0.8) -> float:
    """The most streams one device answers within `budget_s`.

    A dynamic batcher waits up to w, then runs one batch of all that
    came: f + a N w seconds for N streams (f fixed, a per audio
    second). The device keeps up if that fits in `max_busy` of w;
    the slowest answer waits w, then the batch. The shortest window
    that keeps up, w = f / (max_busy - a N), puts that answer within
    the budget T while a N <= ((T - f) max_busy - f) / T.
    """
    f, a = cost.fixed_ms / 1000, cost.per_audio_s_ms / 1000
    share = ((budget_s - f) * max_busy - f) / budget_s
    if share <= 0:
        return 0.0  # launches alone take the budget
    return math.inf if a == 0 else share / a


def batch_window_s(cost: CostModel, streams: float,
                   max_busy: float = 0.8) -> float:
    """The shortest batching window that keeps up with `streams`."""
    f, a = cost.fixed_ms / 1000, cost.per_audio_s_ms / 1000
    return f / (max_busy - a * streams)
# --8<-- [end:streams_per_device]


@dataclass(frozen=True)
class Fit:
    """One accelerator sized for the load."""

    offer: Offer
    precision: str
    cost: CostModel
    per_device: int  # streams one device holds, compute or memory
    devices: int
    window_s: float

    @property
    def on_demand_per_hour(self) -> float:
        return self.devices * self.offer.on_demand_per_hour

    @property
    def spot_per_hour(self) -> float:
        return self.devices * self.offer.spot_per_hour


@dataclass(frozen=True)
class Load:
    streams: int
    budget_s: float
    max_busy: float = 0.8


def scaled_cost(profile: DeviceProfile, cost_profile: str,
                catalogue: Catalogue, offer: Offer,
                precision: str) -> CostModel:
    """The measured profile moved to another accelerator: compute
    scales with tensor-core throughput, launches stay as they are."""
    measured = profile.cost(cost_profile, "bf16")
    reference = catalogue.offer(catalogue.reference).tflops["bf16"]
    factor = reference / offer.tflops[precision]
    return CostModel(measured.fixed_ms, measured.per_audio_s_ms * factor)


def memory_streams(profile: DeviceProfile, offer: Offer,
                   precision: str) -> float:
    """Streams whose state fits beside the weights."""
    free = offer.memory_gib * GIB - profile.weights_bytes(precision)
    state = (profile.model.state_bytes_per_stream
             * profile.relative_size(precision))
    return max(0.0, free / state) if state else math.inf


def fit(profile: DeviceProfile, cost_profile: str, catalogue: Catalogue,
        offer: Offer, precision: str, load: Load) -> Fit | None:
    """How `offer` serves `load`, or None if it cannot at all."""
    if precision not in offer.tflops:
        return None
    cost = scaled_cost(profile, cost_profile, catalogue, offer, precision)
    per_device = math.floor(min(
        streams_per_device(cost, load.budget_s, load.max_busy),
        memory_streams(profile, offer, precision),
        load.streams))
    if per_device < 1:
        return None
    devices = math.ceil(load.streams / per_device)
    per_device = math.ceil(load.streams / devices)  # spread evenly
    window = batch_window_s(cost, per_device, load.max_busy)
    return Fit(offer, precision, cost, per_device, devices, window)


def why_not(profile: DeviceProfile, cost_profile: str,
            catalogue: Catalogue, offer: Offer, precision: str,
            load: Load) -> str:
    """Why `offer` holds not one stream of `load`: what runs out."""
    if precision not in offer.tflops:
        return f"does not compute in {precision}"
    if memory_streams(profile, offer, precision) < 1:
        return (f"{offer.memory_gib:g} GiB holds no stream's state beside"
                f" the weights in {precision}")
    cost = scaled_cost(profile, cost_profile, catalogue, offer, precision)
    return (f"a batch's launch alone takes {cost.fixed_ms:g} ms, and a"
            " batch must wait for audio first")


def size(profile: DeviceProfile, cost_profile: str, catalogue: Catalogue,
         precision: str, load: Load) -> list[Fit]:
    """Every accelerator that meets the budget, cheapest first."""
    fits = [fit(profile, cost_profile, catalogue, offer, precision, load)
            for offer in catalogue.accelerators]
    return sorted((f for f in fits if f is not None),
                  key=lambda f: (f.on_demand_per_hour, f.offer.name))

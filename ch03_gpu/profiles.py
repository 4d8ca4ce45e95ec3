"""The device profile: measured figures in a file, checked on load.

Chapter 3, "Measuring GPU utilization". Every number the device model
uses (what a batch costs, how much memory the device has and the model
takes, what each number format saves, what an LLM's decode step costs)
lives in `profiles.toml`, with its source, so a reader with a GPU can
measure their own model and drop the figures in. A file with a
missing or negative figure is refused with the field's name, never
half-loaded.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ch03_gpu.device import Accelerator, CostModel
from ch03_gpu.llm_decode import DecodeCostModel
from ch03_gpu.memory import MIB, DeviceMemory

PROFILE_FILE = Path(__file__).with_name("profiles.toml")

NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class ProfileError(ValueError):
    """A profile file that cannot be used, and why."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceSpec(Strict):
    name: str
    memory_mib: Positive


class ModelSpec(Strict):
    name: str
    parameters: Positive
    state_bytes_per_stream: NonNegative
    activation_bytes_per_audio_s: NonNegative


class CostSpec(Strict):
    description: str = ""
    fixed_ms: NonNegative
    per_audio_s_ms: NonNegative


class DecodeCostSpec(Strict):
    description: str = ""
    step_fixed_ms: NonNegative
    per_sequence_ms: NonNegative
    source: str


class PrecisionSpec(Strict):
    bytes_per_value: Positive
    speedup: Positive
    source: str


class DeviceProfile(Strict):
    """Everything `profiles.toml` holds, checked."""

    device: DeviceSpec
    model: ModelSpec
    profiles: dict[str, CostSpec] = Field(min_length=1)
    precisions: dict[str, PrecisionSpec] = Field(min_length=1)
    decode_profiles: dict[str, DecodeCostSpec] = Field(default_factory=dict)

    def cost(self, profile: str, precision: str = "bf16") -> CostModel:
        """A profile's cost model in a number format: only the compute
        (per audio second) part gets faster; launches do not."""
        spec = self.profiles[profile]
        speedup = self.precisions[precision].speedup
        return CostModel(spec.fixed_ms, spec.per_audio_s_ms / speedup)

    def decode_cost(self, model: str, launch: str = "zero"
                    ) -> DecodeCostModel:
        """What one step of `model`'s decode costs on this device when
        the host launches it as cost profile `launch` does (a call's
        fixed cost: ~20 ms eager, ~2 ms with CUDA graphs)."""
        spec = self.decode_profiles[model]
        return DecodeCostModel(spec.step_fixed_ms, spec.per_sequence_ms,
                               self.profiles[launch].fixed_ms)

    def weights_bytes(self, precision: str = "bf16") -> float:
        per_value = self.precisions[precision].bytes_per_value
        return self.model.parameters * per_value

    def relative_size(self, precision: str) -> float:
        """Bytes of a value in `precision` over bf16's: the model's
        state and activation figures are given in bf16."""
        per_value = self.precisions[precision].bytes_per_value
        return per_value / self.precisions["bf16"].bytes_per_value

    def accelerator(self, profile: str, precision: str = "bf16",
                    **timing: Any) -> Accelerator:
        """A device with this profile's costs and memory, the weights
        loaded; `timing` passes load, warm-up, sleep and clock on."""
        memory = DeviceMemory(self.device.memory_mib * MIB)
        memory.reserve("weights", self.weights_bytes(precision))
        size = self.relative_size(precision)
        return Accelerator(
            self.cost(profile, precision), memory=memory,
            activation_bytes_per_audio_s=(
                self.model.activation_bytes_per_audio_s * size),
            state_bytes_per_stream=self.model.state_bytes_per_stream * size,
            name=self.device.name, **timing)


def load_profile(path: Path = PROFILE_FILE) -> DeviceProfile:
    """Read and check a profile file; `ProfileError` names what is
    wrong with it."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ProfileError(f"{path}: {error}") from None
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}"
            for e in error.errors())
        raise ProfileError(f"{path}: {problems}") from None


PROFILE = load_profile()
PROFILES: dict[str, CostModel] = {
    name: PROFILE.cost(name) for name in PROFILE.profiles}

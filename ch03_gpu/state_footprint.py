"""What a token of attention state costs in bytes, and how many fit.

Chapter 3, "KV cache as the central bottleneck" and "KV cache
quantization". A decoder keeps a key and a value vector per layer and
KV head for every token it has seen; the model's shape and the storage
precision turn tokens into bytes, and a GPU's memory less the weights
turns bytes back into a token budget. NVFP4 stores 4-bit values plus
one FP8 scale per 16 of them, so it costs 4.5 bits per value, not 4.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

GB = 10**9


@dataclass(frozen=True)
class ModelShape:
    """The attention dimensions that size the KV cache."""

    name: str
    layers: int
    kv_heads: int
    head_dim: int
    parameters: float

    @property
    def values_per_token(self) -> int:
        # A key and a value vector per layer and KV head.
        return 2 * self.layers * self.kv_heads * self.head_dim


def attention_variants(shape: ModelShape, query_heads: int
                       ) -> dict[str, ModelShape]:
    """The same model with one KV head per query head (multi-head), its
    own grouping (grouped-query) and one KV head shared by all
    (multi-query): the state per token scales with the KV heads."""
    return {
        "MHA": replace(shape, kv_heads=query_heads),
        "GQA": shape,
        "MQA": replace(shape, kv_heads=1),
    }


# meta-llama/Llama-3.1-8B config.json on Hugging Face:
# num_hidden_layers 32, num_key_value_heads 8, hidden_size 4096 over
# num_attention_heads 32 (head dim 128); 8.03B parameters (model card).
LLAMA_3_1_8B = ModelShape(
    name="Llama-3.1-8B", layers=32, kv_heads=8, head_dim=128,
    parameters=8.03e9,
)
LLAMA_3_1_8B_QUERY_HEADS = 32


@dataclass(frozen=True)
class StatePrecision:
    """A storage format: bits per value, plus block scale factors."""

    name: str
    value_bits: int
    scale_bits: int = 0  # one scale per `group_size` values
    group_size: int = 1

    @property
    def bits_per_value(self) -> float:
        if self.scale_bits == 0:
            return float(self.value_bits)
        return self.value_bits + self.scale_bits / self.group_size


BF16 = StatePrecision("bf16", 16)
# FP8 KV caches (vLLM's --kv-cache-dtype fp8) keep one scale per layer
# and tensor: a few bytes per model, not per value, so none is counted.
FP8 = StatePrecision("fp8", 8)
# NVIDIA, "Introducing NVFP4 for Efficient and Accurate Low-Precision
# Inference" (developer blog, 2025): E2M1 values in micro-blocks of 16,
# each with an FP8 (E4M3) scale, plus one FP32 scale per tensor (not
# counted, as for FP8).
NVFP4 = StatePrecision("nvfp4", 4, scale_bits=8, group_size=16)
PRECISIONS = (BF16, FP8, NVFP4)


def bytes_per_token(shape: ModelShape, precision: StatePrecision) -> float:
    return shape.values_per_token * precision.bits_per_value / 8


@dataclass(frozen=True)
class MemoryBudget:
    """The device memory left for state once the weights are loaded."""

    device_bytes: float
    weight_bytes: float
    # vLLM's default --gpu-memory-utilization is 0.9: the rest is kept
    # for activations, the CUDA context and the allocator's own slack.
    utilization: float = 0.9

    @property
    def state_bytes(self) -> float:
        return self.device_bytes * self.utilization - self.weight_bytes

    def tokens(self, shape: ModelShape, precision: StatePrecision) -> int:
        return int(self.state_bytes // bytes_per_token(shape, precision))


# NVIDIA H200 product page: 141 GB of HBM3e. Weights in bf16 (2 bytes
# per parameter) whatever the KV precision, so the comparison isolates
# what the state's precision does.
H200_LLAMA_3_1_8B = MemoryBudget(
    device_bytes=141 * GB, weight_bytes=LLAMA_3_1_8B.parameters * 2
)


def reduction_pct(smaller: StatePrecision, larger: StatePrecision) -> float:
    """How much less memory `smaller` needs than `larger`, in %."""
    return 100 * (1 - smaller.bits_per_value / larger.bits_per_value)

"""`python -m ch03_gpu memory`: paged versus contiguous state, measured.

Chapter 3, "PagedAttention: virtual memory for KV cache" and "KV cache
quantization". One seeded ShareGPT-like trace is replayed through three
placements (the context window reserved up front, the exact final
length reserved up front, paged blocks on demand) in the memory an
H200 has left for Llama-3.1-8B's KV cache, at each state precision.
The table shows each one's waste, as `memory_replay` defines it, and
how many sequences ran at once while memory was the limit.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ch03_gpu.memory_replay import DoesNotFitError, ReplayResult, replay
from ch03_gpu.placements import (
    PagedPlacement,
    exact_size_placement,
    max_length_placement,
)
from ch03_gpu.request_trace import SHAREGPT_LIKE, LengthModel, generate_trace
from ch03_gpu.state_footprint import (
    BF16,
    FP8,
    GB,
    H200_LLAMA_3_1_8B,
    LLAMA_3_1_8B,
    LLAMA_3_1_8B_QUERY_HEADS,
    NVFP4,
    PRECISIONS,
    MemoryBudget,
    ModelShape,
    StatePrecision,
    attention_variants,
    bytes_per_token,
    reduction_pct,
)
from ch03_gpu.state_tiers import host_and_disk


@dataclass(frozen=True)
class LabSetup:
    shape: ModelShape = LLAMA_3_1_8B
    budget: MemoryBudget = H200_LLAMA_3_1_8B
    block_tokens: int = 16
    lengths: LengthModel = SHAREGPT_LIKE
    seed: int = 1
    # Trace length, in multiples of the requests that fit at once: long
    # enough that the start, when every request arrives, weighs little.
    requests_per_capacity: float = 10.0


DEFAULT_SETUP = LabSetup()


@dataclass(frozen=True)
class PrecisionRun:
    precision: StatePrecision
    capacity_tokens: int
    requests: int
    max_length: ReplayResult
    exact: ReplayResult
    paged: ReplayResult
    swap_seconds: float

    @property
    def results(self) -> tuple[ReplayResult, ...]:
        return (self.max_length, self.exact, self.paged)


def run_precision(
    precision: StatePrecision, setup: LabSetup = DEFAULT_SETUP
) -> PrecisionRun:
    """Replay one trace through the three placements at `precision`."""
    capacity = setup.budget.tokens(setup.shape, precision)
    lengths = setup.lengths
    mean_len = lengths.prompt_mean + lengths.output_mean
    count = round(setup.requests_per_capacity * capacity / mean_len)
    # The same seed gives the same requests: a longer trace extends a
    # shorter one, so every precision sees the same opening.
    trace = generate_trace(count, setup.seed, lengths)
    block_bytes = setup.block_tokens * bytes_per_token(setup.shape, precision)
    paged = PagedPlacement(
        capacity // setup.block_tokens, setup.block_tokens,
        host_and_disk(block_bytes),
    )
    # Long enough for the burst of preemptions that follows admitting
    # the whole queue at once to pass (a few hundred steps).
    warmup = round(2 * lengths.output_mean)
    return PrecisionRun(
        precision, capacity, count,
        max_length=replay(
            trace, max_length_placement(capacity, lengths.max_len), warmup
        ),
        exact=replay(trace, exact_size_placement(capacity), warmup),
        paged=replay(trace, paged, warmup),
        swap_seconds=paged.swap.transfer_seconds,
    )


def format_table(runs: Sequence[PrecisionRun], setup: LabSetup) -> str:
    budget, shape = setup.budget, setup.shape
    lines = [
        f"{shape.name}: {budget.state_bytes / GB:.1f} GB for state"
        f" ({budget.device_bytes / GB:.0f} GB x {budget.utilization:g}"
        f" - {budget.weight_bytes / GB:.1f} GB of weights)",
        f"blocks of {setup.block_tokens} tokens; ShareGPT-like trace,"
        f" seed {setup.seed}; measured while requests wait",
        "",
        f"{'state':<6} {'KiB/tok':>7}  {'placement':<18} {'waste%':>6}"
        f" {'int%':>5} {'ext%':>5} {'running':>8} {'peak':>5}",
    ]
    for run in runs:
        kib = bytes_per_token(shape, run.precision) / 1024
        lines += [
            f"{run.precision.name:<6} {kib:>7.1f}  {result.placement:<18}"
            f" {result.waste_pct:>6.1f} {result.internal_pct:>5.1f}"
            f" {result.external_pct:>5.1f} {result.mean_running:>8.0f}"
            f" {result.peak_running:>5}"
            for result in run.results
        ]
    lines.append("")
    for run in runs:
        lines += [
            f"{run.precision.name}: {run.requests:,} requests; paged runs"
            f" {gain(run.paged, run.max_length):.2f}x max-len's sequences,"
            f" {gain(run.paged, run.exact):.2f}x exact's;",
            f"  {run.paged.preemptions:,} preemptions,"
            f" {run.swap_seconds:.2f} s of swap transfers",
        ]
    by_name = {run.precision.name: run for run in runs}
    if FP8.name in by_name and NVFP4.name in by_name:
        fp8, nvfp4 = by_name[FP8.name], by_name[NVFP4.name]
        lines += [
            f"nvfp4 ({NVFP4.bits_per_value:g} bits a value with its scales)"
            f" needs {reduction_pct(NVFP4, FP8):.2f}% less than fp8,",
            f"  not 50%, and runs {gain(nvfp4.paged, fp8.paged):.2f}x the"
            " sequences",
        ]
    return "\n".join(lines)


def gain(better: ReplayResult, baseline: ReplayResult) -> float:
    """How many times the sequences of `baseline` `better` runs at once."""
    if not baseline.mean_running:
        return math.nan  # the trace never filled the memory
    return better.mean_running / baseline.mean_running


def main_memory(argv: Sequence[str] | None = None) -> int:
    names = {p.name: p for p in PRECISIONS}
    parser = argparse.ArgumentParser(
        prog="python -m ch03_gpu memory",
        description="Waste and concurrency of paged and contiguous state.",
    )
    parser.add_argument(
        "--precision", action="append", choices=sorted(names),
        help="state precision (repeatable; default: all)",
    )
    parser.add_argument("--seed", type=int, default=LabSetup.seed)
    parser.add_argument(
        "--device-gb", type=float,
        default=H200_LLAMA_3_1_8B.device_bytes / GB,
        help="device memory in GB (default: an H200's 141)",
    )
    parser.add_argument(
        "--requests-per-capacity", type=float,
        default=LabSetup.requests_per_capacity,
        help="trace length, in multiples of the requests that fit",
    )
    args = parser.parse_args(argv)
    budget = replace(H200_LLAMA_3_1_8B, device_bytes=args.device_gb * GB)
    if budget.state_bytes <= 0:
        parser.error(
            f"--device-gb {args.device_gb:g}: the weights alone need"
            f" {budget.weight_bytes / budget.utilization / GB:.1f} GB"
        )
    if args.requests_per_capacity < 2:
        parser.error(
            "--requests-per-capacity must be 2 or more: a shorter trace"
            " never fills the memory"
        )
    setup = LabSetup(
        budget=budget, seed=args.seed,
        requests_per_capacity=args.requests_per_capacity,
    )
    chosen = [names[n] for n in args.precision or names]
    try:
        runs = [run_precision(precision, setup) for precision in chosen]
    except DoesNotFitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_table(runs, setup))
    print()
    print(attention_table(setup.budget))
    return 0


def attention_table(budget: MemoryBudget) -> str:
    """State per token, and tokens that fit, for MHA, GQA and MQA."""
    lines = [f"Attention heads and state ({LLAMA_3_1_8B.name}'s shape,"
             " bf16):", "  variant  KV heads  KiB/token  tokens that fit"]
    variants = attention_variants(LLAMA_3_1_8B, LLAMA_3_1_8B_QUERY_HEADS)
    for name, shape in variants.items():
        per_token = bytes_per_token(shape, BF16) / 1024
        lines.append(f"  {name:<7}  {shape.kv_heads:>8}  {per_token:>9.0f}"
                     f"  {budget.tokens(shape, BF16):>15,}")
    return "\n".join(lines)

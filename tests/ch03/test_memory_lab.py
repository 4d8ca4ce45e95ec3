"""Bytes per token, the `memory` command, and the benchmark's sections."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from bench.ch03_gpu import allocator_figures, memory_figures
from ch03_gpu.__main__ import main
from ch03_gpu.memory_lab import (
    LabSetup,
    attention_table,
    gain,
    run_precision,
)
from ch03_gpu.memory_replay import ReplayResult
from ch03_gpu.request_trace import LengthModel
from ch03_gpu.state_footprint import (
    BF16,
    FP8,
    GB,
    H200_LLAMA_3_1_8B,
    LLAMA_3_1_8B,
    NVFP4,
    attention_variants,
    bytes_per_token,
    reduction_pct,
)

# Short requests in a small memory, so that a replay takes moments.
SMALL = LabSetup(
    budget=replace(H200_LLAMA_3_1_8B, device_bytes=18.5 * GB),
    lengths=LengthModel(prompt_mean=40, output_mean=60, max_len=256),
)


def test_a_llama_3_1_8b_token_costs_128_kib_in_bf16() -> None:
    assert bytes_per_token(LLAMA_3_1_8B, BF16) == 2 * 32 * 8 * 128 * 2
    assert bytes_per_token(LLAMA_3_1_8B, FP8) == 64 * 1024
    # 4 bits a value and an 8-bit scale per 16 values: 4.5 bits.
    assert bytes_per_token(LLAMA_3_1_8B, NVFP4) == 65536 * 4.5 / 8


def test_nvfp4_saves_43_75_pct_over_fp8_not_50() -> None:
    assert reduction_pct(NVFP4, FP8) == pytest.approx(43.75)
    assert reduction_pct(FP8, BF16) == pytest.approx(50)


def test_an_h200_holds_845_thousand_bf16_tokens_after_the_weights() -> None:
    budget = H200_LLAMA_3_1_8B
    assert budget.state_bytes == pytest.approx(110.84e9)
    assert budget.tokens(LLAMA_3_1_8B, BF16) == 845_642


def test_lower_precision_runs_more_sequences_on_the_same_trace() -> None:
    bf16, nvfp4 = run_precision(BF16, SMALL), run_precision(NVFP4, SMALL)
    assert nvfp4.requests > bf16.requests
    assert 2.5 < gain(nvfp4.paged, bf16.paged) < 16 / 4.5
    assert bf16.paged.waste_pct < bf16.exact.waste_pct


def test_gain_over_a_memory_never_filled_is_not_a_number() -> None:
    assert math.isnan(gain(ReplayResult("a"), ReplayResult("b")))


def test_memory_command_prints_the_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["memory", "--device-gb", "18.5", "--precision", "fp8",
                 "--precision", "nvfp4"]) == 0
    out = capsys.readouterr().out
    assert "fp8       64.0  contiguous max-len" in out
    assert "nvfp4     36.0  paged" in out
    assert "needs 43.75% less than fp8" in out
    assert all(len(line) <= 79 for line in out.splitlines())


@pytest.mark.parametrize(("flags", "message"), [
    (["--device-gb", "17"], "the weights alone need 17.8 GB"),
    (["--requests-per-capacity", "1"], "must be 2 or more"),
    (["--precision", "int4"], "invalid choice: 'int4'"),
])
def test_memory_command_refuses_bad_flags(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["memory", *flags])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_memory_too_small_for_one_request_is_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 0.04 GB of state: 305 bf16 tokens, less than the 2048 of max-len.
    assert main(["memory", "--device-gb", "17.9", "--precision", "bf16"]) == 1
    assert "does not fit contiguous max-len" in capsys.readouterr().err


def test_unknown_command_exits_with_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["cache"])
    assert exited.value.code == 2
    assert "invalid choice: 'cache'" in capsys.readouterr().err


def test_benchmark_sections_return_named_figures() -> None:
    assert allocator_figures(appends=20_000)["allocator_appends_per_s"] > 0
    figures = memory_figures(SMALL)
    # Requests this short leave more of a last block empty than the
    # ShareGPT-like ones; the 4% bound is checked at those lengths.
    assert figures["paged_waste_pct"] < figures["exact_contiguous_waste_pct"]
    assert figures["exact_contiguous_waste_pct"] < (
        figures["contiguous_waste_pct"]
    )
    assert figures["nvfp4_vs_fp8_memory_reduction_pct"] == 43.75
    assert figures["paged_vs_contiguous_max_sequences"] > 1


def test_kv_heads_set_the_state_per_token() -> None:
    """Llama-3.1-8B: 32 layers, head dim 128, 32 query heads. A key and
    a value per layer and KV head in bf16: 2 x 32 x 128 x 2 bytes =
    16 KiB per KV head, so 512 KiB for MHA, 128 for its 8-head GQA,
    16 for MQA."""
    variants = attention_variants(LLAMA_3_1_8B, 32)
    kib = {name: bytes_per_token(shape, BF16) / 1024
           for name, shape in variants.items()}
    assert kib == {"MHA": 512, "GQA": 128, "MQA": 16}
    table = attention_table(H200_LLAMA_3_1_8B).splitlines()
    assert table[2].split()[:3] == ["MHA", "32", "512"]
    assert table[3].split()[:3] == ["GQA", "8", "128"]
    tokens = [int(line.split()[-1].replace(",", "")) for line in table[2:]]
    assert tokens[1] == H200_LLAMA_3_1_8B.tokens(LLAMA_3_1_8B, BF16)
    assert tokens[0] * 4 <= tokens[1] <= tokens[0] * 4 + 3

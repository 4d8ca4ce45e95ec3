"""The chapter 10 benchmark's figures come from real appends, a real
verification, real proofs and a real erasure (here at a small scale)."""

from __future__ import annotations

from bench.__main__ import discover, validate
from bench.ch10_compliance import figures, latency_figures


def test_the_benchmark_measures_each_figure_at_a_small_scale() -> None:
    assert "ch10_compliance" in discover()
    measured = validate("ch10_compliance", figures(
        events=2_000, entries=3_000, proofs=50, objects=40))
    assert measured["audit_verified_entries"] == 3_000
    for name in ("audit_appends_per_s", "audit_verify_1m_entries_s",
                 "inclusion_proof_us", "inclusion_proof_p50_us",
                 "erasure_10k_objects_s"):
        assert measured[name] > 0, name
    assert measured["inclusion_proof_p50_us"] <= measured[
        "inclusion_proof_us"]


def test_the_latency_figures_come_from_both_services() -> None:
    # Paced, as the benchmark streams: a fixture sent all at once may be
    # decoded in one go, with no interim to time.
    measured = latency_figures(("weather_forecast",), realtime=True)
    assert set(measured) == {"governed_interim_p95_ms",
                             "governed_result_p99_ms",
                             "ch09_result_p99_ms"}
    assert all(value >= 0 for value in measured.values())

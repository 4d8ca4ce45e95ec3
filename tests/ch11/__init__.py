"""Tests of chapter 11: SLOs, burn rates and Prometheus rules."""

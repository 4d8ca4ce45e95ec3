"""Tests of chapter 12: scaling out on Ray Serve."""

"""Tests of chapter 3: GPU optimization and cold starts."""

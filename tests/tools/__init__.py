"""Tests of the repository tooling."""

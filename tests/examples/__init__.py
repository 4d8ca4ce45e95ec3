"""Tests of the examples: clients and tools run against real services."""

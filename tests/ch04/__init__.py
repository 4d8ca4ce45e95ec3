"""Tests of chapter 4: streaming audio architecture."""

"""Chapter 8 tests."""

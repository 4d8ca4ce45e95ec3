"""Chapter 10 tests."""

"""Chapter 9 tests."""

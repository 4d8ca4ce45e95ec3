"""Chapter 5 tests: protocols for streaming audio."""

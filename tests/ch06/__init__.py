"""Chapter 6 tests: many streams, one accelerator."""

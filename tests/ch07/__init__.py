"""Chapter 7 tests: the OpenAI-compatible and AIP-styled API."""

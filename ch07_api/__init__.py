"""Chapter 7: an ML-facing HTTP API, OpenAI-compatible and AIP-styled."""

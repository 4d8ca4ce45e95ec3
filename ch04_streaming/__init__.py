"""Chapter 4: streaming audio architecture."""

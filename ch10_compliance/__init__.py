"""Chapter 10: compliance and data governance for audio ML APIs."""

"""Chapter 8: usage metering, billing and rate limits by tier."""

"""Chapter 11: SLOs for streaming ML systems."""

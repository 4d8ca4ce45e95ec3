"""Chapter 12: scaling the speech service out on Ray Serve."""

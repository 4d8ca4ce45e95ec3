"""Chapter 9: security for audio ML APIs."""

"""Chapter 5 tests: the protocols, on chapter 4's session core."""

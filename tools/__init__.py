"""Repository tooling: the snippet toolchain, the layering check."""

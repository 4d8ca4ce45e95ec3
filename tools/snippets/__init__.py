"""The book-snippet toolchain.

Code regions marked as pymdownx.snippets sections are what the book
prints. This package finds them, checks that each one is well-formed,
narrow enough for print, placed by the manuscript contract
(`book/snippets.toml`) and executed by the tests, and extracts them for
the book build. See CONTRIBUTING.md for the marker syntax.
"""

"""The test suite: `make test` runs it under coverage."""

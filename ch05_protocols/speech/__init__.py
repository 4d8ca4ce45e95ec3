"""Generated stubs of the speech.v1 protos (chapter 5)."""

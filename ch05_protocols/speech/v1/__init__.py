"""Generated from protos/speech/v1/speech.proto by `make protos`.

Chapter 5, "gRPC bidirectional streaming": the messages and the service
stub of our own streaming recognition API. Never edit these files:
change the proto and regenerate.
"""

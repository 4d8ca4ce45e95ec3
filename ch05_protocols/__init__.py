"""Chapter 5: protocol selection for audio, measured.

The same audio stream, on chapter 4's session core, over binary
WebSocket, base64-in-JSON WebSocket and gRPC bidirectional streaming
(our own proto and Google Cloud Speech's), with the numbers a protocol
decision needs: bytes on the wire, CPU, latency and capacity.
"""

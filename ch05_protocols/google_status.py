"""How Google's streaming API says no: a gRPC status and its wording.

Chapter 5, "gRPC bidirectional streaming: protobuf for audio chunks,
deadline propagation, Google's approach". Over WebSocket a refusal is a
close code and a reason; over gRPC it is a status code and a message in
the call's trailers, which every client library raises as an exception.
Each way a Google Cloud Speech stream can go wrong is one function here,
with the status Google returns and, where Google's wording is known,
that wording, so that code written against Google meets the same errors.
"""

from __future__ import annotations

import grpc


class StreamError(Exception):
    """Ends a stream with a gRPC status; the message goes to the client."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


OAUTH_EXPECTED = ("Expected OAuth 2 access token, login cookie or other"
                  " valid authentication credential.")


def missing_credential() -> StreamError:
    return StreamError(
        grpc.StatusCode.UNAUTHENTICATED,
        "Request is missing required authentication credential. "
        + OAUTH_EXPECTED)


def invalid_credential() -> StreamError:
    return StreamError(
        grpc.StatusCode.UNAUTHENTICATED,
        "Request had invalid authentication credentials. " + OAUTH_EXPECTED)


def invalid_api_key() -> StreamError:
    # Google answers a wrong `x-goog-api-key` with INVALID_ARGUMENT, not
    # UNAUTHENTICATED: the key is a request parameter, not a credential.
    return StreamError(grpc.StatusCode.INVALID_ARGUMENT,
                       "API key not valid. Please pass a valid API key.")


def not_ready() -> StreamError:
    return StreamError(grpc.StatusCode.UNAVAILABLE,
                       "The service is currently unavailable.")


def audio_before_config() -> StreamError:
    return StreamError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "Malordered Data Received. Send exactly one config, followed by"
        " audio data.")


def expected_audio() -> StreamError:
    return StreamError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "Malordered Data Received. Expected audio but none was set. Send"
        " exactly one config, followed by audio data.")


def invalid_config(detail: str) -> StreamError:
    return StreamError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"Invalid recognition 'config': {detail}")


def audio_chunk_too_large(limit_bytes: int) -> StreamError:
    return StreamError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Audio chunk can be of a maximum of {limit_bytes} bytes.")


def invalid_audio(detail: str) -> StreamError:
    return StreamError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"Invalid audio content: {detail}")


def audio_timeout() -> StreamError:
    return StreamError(
        grpc.StatusCode.OUT_OF_RANGE,
        "Audio Timeout Error: Long duration elapsed without audio. Audio"
        " should be sent close to real time.")


def stream_too_long(limit_s: float) -> StreamError:
    return StreamError(
        grpc.StatusCode.OUT_OF_RANGE,
        f"Exceeded maximum allowed stream duration of {limit_s:g} seconds.")


def client_not_reading(unread: int) -> StreamError:
    return StreamError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"{unread} responses unread: the client is not reading; read"
        " responses while sending audio.")


def results_late(timeout_s: float) -> StreamError:
    return StreamError(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        f"The last results were not ready within {timeout_s:g} s of the"
        " end of the audio; retry the stream.")


def refused(code: grpc.StatusCode, reason: str) -> StreamError:
    """The server's own refusal (capacity, draining, a tier limit)."""
    return StreamError(code, reason)


def usage_limit(reason: str) -> StreamError:
    return StreamError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                       f"usage limit: {reason}")


def deadline_passed(detail: str) -> StreamError:
    return StreamError(grpc.StatusCode.DEADLINE_EXCEEDED,
                       f"{detail}: no more audio is decoded")


def server_shutting_down() -> StreamError:
    return StreamError(
        grpc.StatusCode.UNAVAILABLE, "server shutting down: the results"
        " sent are final; open a new stream for more audio")


def internal() -> StreamError:
    return StreamError(grpc.StatusCode.INTERNAL,
                       "Internal error encountered.")

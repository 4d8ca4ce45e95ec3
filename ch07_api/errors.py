"""ML-specific failures, and the one table that maps them to HTTP.

Chapter 7, "Error handling for ML-specific failures". An inference API
fails in ways a CRUD API does not: the model is still loading, the
accelerator ran out of memory, inference took too long, the queue in
front of the model is full, the audio cannot be decoded. Each failure
is one exception type here, and one row of `ERRORS` says its status,
its machine-readable code, whether and when to retry. The same row is
rendered two ways: OpenAI's `{"error": {message, type, param, code}}`
on the OpenAI-compatible routes, and the `google.rpc.Status` JSON of
Google's APIs on the AIP routes, so a client of either style can act
on the error without parsing its message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """A failure the client is told about, with its mapping in ERRORS."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class ModelNotReadyError(ApiError):
    """The model is loading or warming up."""


class AcceleratorOutOfMemoryError(ApiError):
    """The device could not hold this request's batch."""


class InferenceTimeoutError(ApiError):
    """Inference did not finish within the request's deadline."""


class QueueFullError(ApiError):
    """No room in front of the model: too much work is waiting."""


class UnavailableError(ApiError):
    """The service cannot serve now (shutting down, inference failed)."""


class UnreadableAudioError(ApiError):
    """The bytes are not audio the decoder can read."""


class PayloadTooLargeError(ApiError):
    """The upload is over the size limit."""


class UnsupportedMediaError(ApiError):
    """The request's content type is not one this route accepts."""


class ModelNotFoundError(ApiError):
    """No model of that name is served by this API version."""


class InvalidRequestError(ApiError):
    """A field is missing, unknown or has a bad value."""


class AuthenticationError(ApiError):
    """No API key, or not a valid one."""


class NotFoundError(ApiError):
    """No resource of that name."""


class FailedPreconditionError(ApiError):
    """The resource is not in a state that allows this."""


class ConflictError(ApiError):
    """A resource of that name exists already."""


class InternalError(ApiError):
    """A fault of the service's own; logged, never the client's."""


# --8<-- [start:error_mapping]
@dataclass(frozen=True)
class ErrorMapping:
    status: int
    code: str  # machine-readable, stable: clients branch on it
    openai_type: str
    rpc_status: str  # google.rpc.Code name
    retry_after_s: int | None = None  # None: retrying will not help


SERVER, CLIENT = "server_error", "invalid_request_error"
# The failures of an inference service, and what the client should do:
# wait and retry (503, 429), retry with less (OOM), or fix the input.
ML_ERRORS: dict[type[ApiError], ErrorMapping] = {
    ModelNotReadyError: ErrorMapping(
        503, "model_not_ready", SERVER, "UNAVAILABLE", 5),
    AcceleratorOutOfMemoryError: ErrorMapping(
        503, "accelerator_out_of_memory", SERVER, "RESOURCE_EXHAUSTED",
        2),
    InferenceTimeoutError: ErrorMapping(
        504, "inference_timeout", SERVER, "DEADLINE_EXCEEDED"),
    QueueFullError: ErrorMapping(
        429, "queue_full", "rate_limit_error", "RESOURCE_EXHAUSTED", 1),
    UnreadableAudioError: ErrorMapping(
        400, "invalid_audio", CLIENT, "INVALID_ARGUMENT"),
    PayloadTooLargeError: ErrorMapping(
        413, "file_too_large", CLIENT, "OUT_OF_RANGE"),
    UnsupportedMediaError: ErrorMapping(
        415, "unsupported_media_type", CLIENT, "INVALID_ARGUMENT"),
    ModelNotFoundError: ErrorMapping(
        404, "model_not_found", CLIENT, "NOT_FOUND"),
}
# --8<-- [end:error_mapping]
# The failures every API has.
REQUEST_ERRORS: dict[type[ApiError], ErrorMapping] = {
    UnavailableError: ErrorMapping(
        503, "server_unavailable", SERVER, "UNAVAILABLE", 1),
    InvalidRequestError: ErrorMapping(
        400, "invalid_value", CLIENT, "INVALID_ARGUMENT"),
    AuthenticationError: ErrorMapping(
        401, "invalid_api_key", CLIENT, "UNAUTHENTICATED"),
    NotFoundError: ErrorMapping(404, "not_found", CLIENT, "NOT_FOUND"),
    FailedPreconditionError: ErrorMapping(
        400, "failed_precondition", CLIENT, "FAILED_PRECONDITION"),
    ConflictError: ErrorMapping(
        409, "already_exists", CLIENT, "ALREADY_EXISTS"),
    InternalError: ErrorMapping(
        500, "internal_error", SERVER, "INTERNAL", 1),
}
ERRORS = ML_ERRORS | REQUEST_ERRORS

ERROR_DOMAIN = "speech.example.com"


def invalid_request(problems: Sequence[Mapping[str, Any]],
                    skip: int = 0) -> InvalidRequestError:
    """A validator's first problem, naming the field it is in (its
    location after the first `skip` parts: a query's leading "query")."""
    first = problems[0]
    where = ".".join(str(p) for p in first["loc"][skip:]) or None
    return InvalidRequestError(f"{where or 'body'}: {first['msg']}", where)


def mapping_of(error: ApiError) -> ErrorMapping:
    return ERRORS[type(error)]


def retry_headers(error: ApiError) -> dict[str, str]:
    """`Retry-After` in seconds, and OpenAI's `retry-after-ms`, which
    its SDKs read first; nothing for a failure retrying will not fix."""
    seconds = mapping_of(error).retry_after_s
    if seconds is None:
        return {}
    return {"Retry-After": str(seconds),
            "retry-after-ms": str(seconds * 1000)}


def openai_body(error: ApiError) -> dict[str, Any]:
    mapping = mapping_of(error)
    return {"error": {"message": error.message,
                      "type": mapping.openai_type,
                      "param": error.param,
                      "code": mapping.code}}


def rpc_status_body(error: ApiError) -> dict[str, Any]:
    """google.rpc.Status as Google's JSON APIs send it, with an
    ErrorInfo detail holding the machine-readable reason."""
    mapping = mapping_of(error)
    info: dict[str, Any] = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": mapping.code.upper(), "domain": ERROR_DOMAIN}
    if error.param:
        info["metadata"] = {"field": error.param}
    return {"error": {"code": mapping.status, "message": error.message,
                      "status": mapping.rpc_status, "details": [info]}}


def rpc_status_of(error: ApiError) -> dict[str, Any]:
    """The Status an operation's `error` field holds (AIP-151): the
    google.rpc.Code number, not the HTTP status."""
    body = rpc_status_body(error)["error"]
    return {"code": RPC_CODES[body["status"]], "message": body["message"],
            "details": body["details"]}


RPC_CODES = {"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3,
             "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5, "ALREADY_EXISTS": 6,
             "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
             "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11,
             "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
             "DATA_LOSS": 15, "UNAUTHENTICATED": 16}

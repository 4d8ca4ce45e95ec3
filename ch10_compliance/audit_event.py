"""What one audit entry says, and what it must never say.

Chapter 10, "Audit logging: what to log". OWASP's logging guidance and
ASVS V16 name the events: authentication successes and failures,
authorisation failures, validation failures, admin and high-risk
actions (keys created or revoked, data deleted or exported), and data
access; an inference request is logged as metadata (who, when, how
long, what outcome), never its audio or transcript. An entry never
holds a token, a key or content: `screened` refuses a field named for
one and a value shaped like one, so a careless caller fails loudly in
a test rather than leaking into a log that cannot be edited later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

Detail = str | int | bool
MAX_DETAILS = 16
MAX_TEXT = 200
ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
# Field names that would carry a secret or content, and values shaped
# like this service's keys (spk_...) or a JWT (three base64url parts).
SECRET_NAME = re.compile(
    r"(^|_)(token|key|secret|password|authorization|audio|transcript"
    r"|text|content)$")
SECRET_VALUE = re.compile(
    r"spk_[A-Za-z0-9]{8,}|eyJ[\w-]+\.[\w-]+\.[\w-]+")


class Action(StrEnum):
    AUTH_SUCCEEDED = "auth.succeeded"
    AUTH_FAILED = "auth.failed"
    ACCESS_DENIED = "authz.denied"
    INPUT_REJECTED = "input.rejected"
    STREAM_STARTED = "inference.stream_started"
    STREAM_ENDED = "inference.stream_ended"
    DATA_STORED = "data.stored"
    DATA_READ = "data.read"
    DATA_DELETED = "data.deleted"
    RESIDENCY_REFUSED = "data.residency_refused"
    KEY_CREATED = "admin.key_created"
    KEY_ROLLED = "admin.key_rolled"
    KEY_REVOKED = "admin.key_revoked"
    CONSENT_GRANTED = "consent.granted"
    CONSENT_WITHDRAWN = "consent.withdrawn"
    SUBJECT_REQUESTED = "subject.request_received"
    SUBJECT_EXPORTED = "subject.exported"
    SUBJECT_ERASED = "subject.erased"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


class UnsafeAuditEntryError(ValueError):
    """An entry would have carried a secret or content: refused."""


@dataclass(frozen=True)
class AuditEvent:
    """Who did what to what, and how it ended: metadata only."""

    action: str  # an `Action`, or an operator's own, e.g. admin.restore
    actor: str  # a key id, "operator:NAME", "system:retention"
    outcome: Outcome = Outcome.SUCCESS
    owner: str = ""  # the customer it concerns, if any
    target: str = ""  # a stream, object, key or request id
    reason: str = ""  # why, for a failure or a deletion
    details: Mapping[str, Detail] = field(default_factory=dict)

    def __post_init__(self) -> None:
        screened(self)


def screened(event: AuditEvent) -> AuditEvent:
    """`event`, if it is well formed and carries nothing secret."""
    if not ACTION.match(event.action):
        raise UnsafeAuditEntryError(
            f"action {event.action!r} is not dotted lower case, "
            "e.g. admin.key_created")
    if len(event.details) > MAX_DETAILS:
        raise UnsafeAuditEntryError(
            f"{len(event.details)} details; at most {MAX_DETAILS}")
    texts = {"actor": event.actor, "owner": event.owner,
             "target": event.target, "reason": event.reason}
    for name, value in event.details.items():
        if SECRET_NAME.search(name):
            raise UnsafeAuditEntryError(
                f"detail {name!r} names a secret or content")
        if isinstance(value, str):
            texts[f"details.{name}"] = value
    for name, text in texts.items():
        if len(text) > MAX_TEXT:
            raise UnsafeAuditEntryError(
                f"{name} is {len(text)} characters; at most {MAX_TEXT}")
        if SECRET_VALUE.search(text):
            raise UnsafeAuditEntryError(
                f"{name} holds something shaped like a key or a token")
    return event


def clipped(text: str) -> str:
    """Text from elsewhere (an error, a client's value), made fit for
    an entry: anything shaped like a secret masked, cut to the limit."""
    return SECRET_VALUE.sub("[redacted]", text)[:MAX_TEXT]


class AuditSink(Protocol):
    """Where audit events go: the log, or a test's list."""

    def record(self, event: AuditEvent) -> None: ...

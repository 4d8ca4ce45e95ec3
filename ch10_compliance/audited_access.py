"""Every authentication and every malformed request, audited.

Chapter 10, "Audit logging: what to log". OWASP and ASVS ask for
authentication successes and failures and for validation failures.
Chapter 4's server checks a credential before the upgrade and parses
the stream's request before the hooks; these wrappers sit at those two
points without changing either. An entry names the key (its id, never
the key or token) or, for a failure, only the kind of credential that
was offered; a validation failure keeps the parser's reason, cut to
the entry's limit, and the dialect it was for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ch04_streaming.dialects.dialect import (
    Dialect,
    RequestError,
    StreamDefaults,
    StreamRequest,
)
from ch09_security.credentials import Credentials
from ch09_security.tokens import looks_like_jwt
from ch09_security.wrapped_dialect import WrappedDialect
from ch10_compliance.audit_event import (
    Action,
    AuditEvent,
    AuditSink,
    Outcome,
    clipped,
)


def offered(candidate: str | None) -> str:
    """What kind of credential was offered: never the credential."""
    if not candidate:
        return "none"
    return "token" if looks_like_jwt(candidate) else "key"


@dataclass
class AuditedCredentials:
    """Chapter 4's `KeyCheck`: chapter 9's credentials, audited."""

    inner: Credentials
    sink: AuditSink

    def verify(self, candidate: str | None) -> bool:
        verdict = self.inner.check(candidate)
        record = verdict.record
        if record is None:
            self.sink.record(AuditEvent(
                Action.AUTH_FAILED, "client", Outcome.FAILURE,
                reason=clipped(verdict.reason),
                details={"credential": offered(candidate)}))
            return False
        self.sink.record(AuditEvent(
            Action.AUTH_SUCCEEDED, record.key_id, owner=record.owner,
            details={"credential": offered(candidate)}))
        return True


class AuditedDialect(WrappedDialect):
    """`inner`, with each request it refuses audited."""

    def __init__(self, inner: Dialect, sink: AuditSink) -> None:
        super().__init__(inner)
        self.sink = sink

    def parse(self, query: Mapping[str, str],
              defaults: StreamDefaults) -> StreamRequest:
        try:
            return self.inner.parse(query, defaults)
        except RequestError as error:
            self.sink.record(AuditEvent(
                Action.INPUT_REJECTED, "client", Outcome.FAILURE,
                reason=clipped(str(error)),
                details={"dialect": self.name, "status": 400}))
            raise


def audited_dialects(dialects: Mapping[str, Dialect],
                     sink: AuditSink) -> dict[str, Dialect]:
    return {path: AuditedDialect(dialect, sink)
            for path, dialect in dialects.items()}

"""No credential in any log line: a filter on every handler.

Chapter 9, "Authentication for streaming connections". A browser puts
its token in the URL (`?token=`), and URLs end up in access logs,
debug logs and error reports: OWASP's WebSocket advice is to keep
tokens out of them. This filter rewrites each record before any
handler formats it: query credentials, `Authorization` values, our
keys (`spk_...`) and anything shaped like a JWT become `[REDACTED]`.
It sits on the handlers, not on a logger, because records that
propagate from library loggers (websockets, uvicorn) pass through
handlers only.
"""

from __future__ import annotations

import logging
import re

MASK = "[REDACTED]"
PATTERNS = [
    re.compile(r"(?i)((?:token|key|access_token|api_key)=)[^&\s\"']+"),
    re.compile(r"(?i)((?:token|bearer|basic)\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"()spk_[0-9A-Za-z]{36}"),
    re.compile(r"()eyJ[\w-]+\.[\w-]+\.[\w-]*"),
]


def redact(text: str) -> str:
    for pattern in PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


# --8<-- [start:log_redaction]
class CredentialFilter(logging.Filter):
    """Rewrites a record's message with every credential masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()  # the arguments filled in
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_logs(root: logging.Logger | None = None) -> None:
    """Put the filter on every handler of the root logger."""
    for handler in (root or logging.getLogger()).handlers:
        if not any(isinstance(f, CredentialFilter)
                   for f in handler.filters):
            handler.addFilter(CredentialFilter())
# --8<-- [end:log_redaction]

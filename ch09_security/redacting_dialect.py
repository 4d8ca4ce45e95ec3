"""Redaction around any chapter 4 dialect: the same wire, redacted words.

Chapter 9, "PII in transcripts: redaction patterns". `RedactingDialect`
wraps a dialect without changing it: its `parse` lets the inner dialect
parse the query, then reads the provider's redaction parameters into a
`RedactedRequest` (400 when they are wrong), and its `open_stream` puts
a `RedactingStream` in front of the inner stream, which redacts every
transcript event's hypothesis (text and words, word times kept) before
the inner stream encodes it. So nothing that leaves in a message, not a
transcript, a word nor a punctuated word, was redacted after encoding,
and neither dialect knows redaction exists. `redacting_dialects` wraps
every dialect a server serves, by path, for `build_server`'s
`more_dialects`, which replace the dialects they share a path with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

from ch04_streaming.dialects.dialect import (
    Dialect,
    DialectStream,
    StreamDefaults,
    StreamRequest,
)
from ch04_streaming.session import SessionEvent, TranscriptEvent
from ch04_streaming.wire import WireMessage
from ch09_security.interim_safe import InterimSafeRedactor
from ch09_security.redaction import NO_REDACTION, RedactionPolicy
from ch09_security.redaction_params import (
    assemblyai_partials,
    assemblyai_policy,
    deepgram_policy,
)
from ch09_security.wrapped_dialect import WrappedDialect, WrappedStream


@dataclass(frozen=True)
class RedactedRequest(StreamRequest):
    """A stream request, and what the client asked to have redacted."""

    redaction: RedactionPolicy = NO_REDACTION

    @classmethod
    def of(cls, request: StreamRequest,
           redaction: RedactionPolicy) -> RedactedRequest:
        parsed = {f.name: getattr(request, f.name) for f in fields(request)}
        return cls(**{**parsed, "redaction": redaction})


# A provider's redaction parameters, read onto what the dialect parsed.
RedactionReader = Callable[[Mapping[str, str], StreamRequest],
                           RedactedRequest]


def read_deepgram(query: Mapping[str, str],
                  request: StreamRequest) -> RedactedRequest:
    return RedactedRequest.of(request, deepgram_policy(query))


def read_assemblyai(query: Mapping[str, str],
                    request: StreamRequest) -> RedactedRequest:
    policy = assemblyai_policy(query)
    options = replace(request.options,
                      interim_results=assemblyai_partials(query, policy))
    return RedactedRequest.of(replace(request, options=options), policy)


# OpenAI's realtime API has no redaction parameter: its path takes
# Deepgram's (`redact=pci`, ...), this service's own extension.
READERS: dict[str, RedactionReader] = {"deepgram": read_deepgram,
                                       "assemblyai": read_assemblyai,
                                       "openai": read_deepgram}


@dataclass
class RedactingStream(WrappedStream):
    """A dialect stream that is handed only redacted hypotheses."""

    redactor: InterimSafeRedactor

    def encode(self, event: SessionEvent) -> list[WireMessage]:
        if isinstance(event, TranscriptEvent):
            hypothesis = self.redactor.redact(event.hypothesis)
            event = replace(event, hypothesis=hypothesis)
        return self.inner.encode(event)


class RedactingDialect(WrappedDialect):
    """`inner`, with its provider's redaction parameters honoured."""

    def __init__(self, inner: Dialect,
                 reader: RedactionReader | None = None) -> None:
        if reader is None and inner.name not in READERS:
            raise ValueError(f"no redaction parameters known for the"
                             f" {inner.name} dialect")
        super().__init__(inner)
        self.reader = reader or READERS[inner.name]

    def parse(self, query: Mapping[str, str],
              defaults: StreamDefaults) -> StreamRequest:
        return self.reader(query, self.inner.parse(query, defaults))

    def open_stream(self, request: StreamRequest) -> DialectStream:
        stream = self.inner.open_stream(request)
        if (not isinstance(request, RedactedRequest)
                or not request.redaction.active):
            return stream
        return RedactingStream(stream, InterimSafeRedactor(request.redaction))


def redacting_dialects(dialects: Mapping[str, Dialect]
                       ) -> dict[str, Dialect]:
    """Every dialect wrapped, under the same paths."""
    return {path: RedactingDialect(dialect)
            for path, dialect in dialects.items()}

"""Chapter 9's stream guard, governed: residency, consent, the record.

Chapter 10, "Building compliance into the architecture vs bolting it
on". These hooks sit outside chapter 9's `StreamGuard`: once it has
admitted a stream (and left its owner in the connection's context),
they decide what the law asks before a byte of audio is processed.
The region is the one the stream names (`region=eu`) or the owner's
first, and must be one the owner may use (403 otherwise). A stream
about a person names them with the customer's own id (`subject=`),
and then needs that person's consent to transcription; keeping it
(`retain=true`) needs a subject, consent to retention, and room in
the region's store (507 when full: never spilled to another region).
Every refusal is audited with its reason, and every admitted stream
is audited twice, as metadata only: when it starts and when it ends,
with its audio duration. Refusals happen before the upgrade, so a
refused client sent no audio.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from ch04_streaming.dialects.dialect import parse_bool
from ch04_streaming.stream_hooks import (
    DeviceTimeTracker,
    Refusal,
    Stop,
    StoppableTracker,
    StreamHooks,
    StreamStart,
    StreamTracker,
)
from ch09_security.retaining_dialect import RETAIN
from ch09_security.stream_owner import StreamOwner, stream_owner
from ch10_compliance.audit_event import (
    Action,
    AuditEvent,
    Outcome,
    clipped,
)
from ch10_compliance.audit_writer import AuditWriter
from ch10_compliance.consent import ConsentLedger, Purpose
from ch10_compliance.processing import ProcessingRecords
from ch10_compliance.residency import RegionNotAllowedError, ResidencyGuard
from ch10_compliance.subject_ref import SubjectRefs

SUBJECT, REGION = "subject", "region"  # this service's query parameters
SUBJECT_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
SUBJECT_RULE = "subject must be 1 to 128 letters, digits or . _ : @ -"
RETAIN_RULE = ("retain=true needs subject=ID (the speaker, as you name "
               "them) so the recording can be found for access and erasure")
INSUFFICIENT_STORAGE = 507


@dataclass(frozen=True)
class GovernedStream:
    """What governs one admitted stream, for the code that keeps it."""

    owner: StreamOwner
    subject: str  # "" when the stream names no one
    region: str
    retain: bool
    started_at_ms: int


_governed: ContextVar[GovernedStream | None] = ContextVar(
    "governed_stream", default=None)


def governed_stream() -> GovernedStream | None:
    """This connection's stream, as admitted; None if not admitted."""
    return _governed.get()


@dataclass
class AuditedTracker:
    """A stream's tracker that audits its end, with its duration."""

    inner: StreamTracker
    stream: GovernedStream
    writer: AuditWriter
    refs: SubjectRefs
    audio_s: float = 0.0

    async def audio(self, seconds: float) -> str | None:
        self.audio_s += seconds
        return await self.inner.audio(seconds)

    def compute(self, device_s: float) -> None:
        if isinstance(self.inner, DeviceTimeTracker):
            self.inner.compute(device_s)

    async def stopped(self) -> Stop:
        if isinstance(self.inner, StoppableTracker):
            return await self.inner.stopped()
        never: asyncio.Future[Stop] = asyncio.Future()
        return await never  # nothing outside can stop this stream

    async def ended(self) -> None:
        await self.inner.ended()
        self.writer.record(stream_event(
            Action.STREAM_ENDED, self.stream, self.refs,
            audio_ms=round(self.audio_s * 1000)))


def stream_event(action: Action, stream: GovernedStream,
                 refs: SubjectRefs, **details: int) -> AuditEvent:
    owner = stream.owner
    subject = refs(owner.owner, stream.subject) if stream.subject else ""
    return AuditEvent(action, owner.key_id, owner=owner.owner,
                      target=owner.stream_id, details={
                          "region": stream.region, "subject": subject,
                          "retain": stream.retain, **details})


@dataclass
class GovernanceHooks:
    inner: StreamHooks  # chapter 9's StreamGuard
    residency: ResidencyGuard
    consent: ConsentLedger
    processing: ProcessingRecords
    writer: AuditWriter
    refs: SubjectRefs
    clock_ms: Callable[[], int]

    async def admit(self, start: StreamStart) -> StreamTracker | Refusal:
        if not self.writer.accepting:  # no stream the log cannot record
            return Refusal(503, "the audit log is behind", 1.0)
        tracker = await self.inner.admit(start)
        if isinstance(tracker, Refusal):
            return self._refused(start, None, tracker)
        owner = stream_owner()  # left by the guard
        if owner is None:  # no guard inside: refuse rather than guess
            await tracker.ended()
            return self._refused(start, None, Refusal(
                500, "this service has no stream guard"))
        governed = await self._govern(start, owner)
        if isinstance(governed, Refusal):
            await tracker.ended()  # frees what the guard held
            return self._refused(start, owner, governed)
        _governed.set(governed)  # for the keeper, at the stream's end
        self.writer.record(stream_event(Action.STREAM_STARTED, governed,
                                        self.refs))
        return AuditedTracker(tracker, governed, self.writer, self.refs)

    # --8<-- [start:governed_admission]
    async def _govern(self, start: StreamStart, owner: StreamOwner
                      ) -> GovernedStream | Refusal:
        """The law's checks, in the order a client can act on them."""
        query, customer = start.query, owner.owner
        subject, retain = query.get(SUBJECT, ""), parse_bool(
            query, RETAIN, False)
        if subject and not SUBJECT_ID.match(subject):
            return Refusal(400, SUBJECT_RULE)
        if retain and not subject:
            return Refusal(400, RETAIN_RULE)
        try:
            region = self.residency.region_for(customer, query.get(REGION))
        except RegionNotAllowedError as error:
            return Refusal(403, str(error))
        needed = [Purpose.TRANSCRIPTION] if subject else []
        needed += [Purpose.RETENTION] if retain else []
        for purpose in needed:
            if not await asyncio.to_thread(self.consent.allowed, customer,
                                           subject, purpose):
                return Refusal(403, f"subject {subject} has not consented"
                               f" to {purpose}")
        if retain and await asyncio.to_thread(self._full, region):
            return Refusal(INSUFFICIENT_STORAGE, f"the {region} store is "
                           "full; audio is never kept in another region")
        if subject:
            await asyncio.to_thread(self.processing.record, customer,
                                    subject, owner.stream_id, region)
        return GovernedStream(owner, subject, region, retain,
                              self.clock_ms())
    # --8<-- [end:governed_admission]

    def _full(self, region: str) -> bool:
        store = self.residency.stores[region]
        capacity = store.capacity_bytes
        return capacity is not None and store.used_bytes() >= capacity

    def _refused(self, start: StreamStart, owner: StreamOwner | None,
                 refusal: Refusal) -> Refusal:
        action = (Action.INPUT_REJECTED if refusal.status == 400
                  else Action.ACCESS_DENIED)
        self.writer.record(AuditEvent(
            action, owner.key_id if owner else "client", Outcome.FAILURE,
            owner=owner.owner if owner else "", target=start.stream_id,
            reason=clipped(refusal.reason),
            details={"status": refusal.status}))
        return refusal

"""A kept stream, stored as the law allows: consent, region, expiry.

Chapter 10, "Data retention and deletion policies for audio data" and
"Data residency". Chapter 9's retaining dialect hands each finished
stream that asked to be kept to a keeper; this one stores it only if
the subject's consent to retention held for the whole stream (a
withdrawal mid-stream means nothing of it is kept), only in the region
the stream was admitted for (a full store refuses; nothing is tried
elsewhere), and with the expiry its data class's retention policy
sets, so the deletion job and crypto-shredding find it on time. Writes
run in a worker thread, off the event loop; each outcome is audited,
and the server awaits the writes under way before it exits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ch09_security.recording_keeper import Recording
from ch10_compliance.audit_event import (
    Action,
    AuditEvent,
    AuditSink,
    Outcome,
    clipped,
)
from ch10_compliance.consent import ConsentLedger, Purpose
from ch10_compliance.data_classes import DataClass
from ch10_compliance.governance_hooks import GovernedStream, governed_stream
from ch10_compliance.regional_store import Governed, RegionFullError
from ch10_compliance.residency import RegionNotAllowedError, ResidencyGuard
from ch10_compliance.subject_ref import SubjectRefs

log = logging.getLogger("ch10_compliance")


@dataclass
class GovernedKeeper:
    residency: ResidencyGuard
    consent: ConsentLedger
    sink: AuditSink
    refs: SubjectRefs
    keep_ms: Mapping[DataClass, int]  # how long each class is kept
    clock_ms: Callable[[], int]
    _writes: set[asyncio.Task[None]] = field(default_factory=set)

    def keep(self, recording: Recording) -> None:
        """Store it soon; called on the event loop, returns at once."""
        stream = governed_stream()
        if stream is None or not stream.retain:
            log.error("event=retention_refused stream_id=%s "
                      "reason=not_admitted_for_retention",
                      recording.stream_id)
            return
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(
            self.store, recording, stream))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def settled(self) -> None:
        while self._writes:
            await asyncio.gather(*self._writes)

    # --8<-- [start:governed_keep]
    def store(self, recording: Recording, stream: GovernedStream) -> None:
        """Keep it if consent held throughout, in its region only."""
        owner, subject = stream.owner.owner, stream.subject
        if not self.consent.allowed_throughout(
                owner, subject, Purpose.RETENTION, stream.started_at_ms):
            return self._audit(stream, Outcome.FAILURE, "consent to "
                               "retention was withdrawn during the stream")
        now = self.clock_ms()
        audio, transcript = recording.plaintexts()
        items = [Governed(
            owner, subject, stream.region, data_class, recording.stream_id,
            plain.data, now + self.keep_ms[data_class], plain.encoding,
            plain.sample_rate, plain.truncated)
            for data_class, plain in ((DataClass.AUDIO, audio),
                                      (DataClass.TRANSCRIPT, transcript))]
        try:
            stored = self.residency.store(*items)
        except (RegionFullError, RegionNotAllowedError) as error:
            return self._audit(stream, Outcome.FAILURE, str(error))
        self._audit(stream, Outcome.SUCCESS, "", objects=len(stored),
                    bytes=sum(s.size_bytes for s in stored))
    # --8<-- [end:governed_keep]

    def _audit(self, stream: GovernedStream, outcome: Outcome,
               reason: str, **details: int) -> None:
        if outcome is Outcome.FAILURE:
            log.warning("event=retention_refused stream_id=%s reason=%s",
                        stream.owner.stream_id, reason)
        self.sink.record(AuditEvent(
            Action.DATA_STORED, "system:retention", outcome,
            owner=stream.owner.owner, target=stream.owner.stream_id,
            reason=clipped(reason), details={
                "region": stream.region,
                "subject": self.refs(stream.owner.owner, stream.subject),
                **details}))

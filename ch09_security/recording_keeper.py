"""A finished stream's recording, sealed and stored off the event loop.

Chapter 9, "Securing audio data: encryption at rest". When a stream
that asked to be kept ends, its audio and final transcripts become two
sealed objects of its owner (`vault.py`). Encrypting up to 16 MiB and
writing it to the database would stall every other stream on the
event loop, so the write runs in a worker thread; the server awaits
the writes still running before it exits (`settled`). A failed write
is logged by stream and owner, with the error's type only: an error
message may quote what was being written.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Protocol

from ch09_security.vault import AudioVault, ObjectKind, Plaintext

log = logging.getLogger("ch09_security")


@dataclass(frozen=True)
class Recording:
    owner: str
    stream_id: str
    encoding: str
    sample_rate: int
    audio: bytes
    finals: tuple[str, ...]  # final transcripts, in order
    audio_cut: bool  # audio beyond the cap was not kept
    finals_cut: bool  # nor finals beyond it

    def plaintexts(self) -> tuple[Plaintext, Plaintext]:
        transcript = "\n".join(self.finals).encode()
        return (Plaintext(self.owner, ObjectKind.AUDIO, self.stream_id,
                          self.audio, self.encoding, self.sample_rate,
                          self.audio_cut),
                Plaintext(self.owner, ObjectKind.TRANSCRIPT,
                          self.stream_id, transcript,
                          truncated=self.finals_cut))


class Keeper(Protocol):
    """Where a finished stream's recording goes: sealed here, or a
    later chapter's governed stores."""

    def keep(self, recording: Recording) -> None: ...


@dataclass
class RecordingKeeper:
    vault: AudioVault
    _writes: set[asyncio.Task[None]] = field(default_factory=set)

    def keep(self, recording: Recording) -> None:
        """Store it soon; called on the event loop, returns at once."""
        task = asyncio.get_running_loop().create_task(
            self._write(recording))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def settled(self) -> None:
        """Every write begun so far has finished."""
        while self._writes:
            await asyncio.gather(*self._writes)

    async def _write(self, recording: Recording) -> None:
        try:
            stored = await asyncio.to_thread(self.vault.put,
                                             *recording.plaintexts())
        except Exception as error:
            log.error("event=retention_failed stream_id=%s owner=%s "
                      "error=%s", recording.stream_id, recording.owner,
                      type(error).__name__)
            return
        log.info("event=retained stream_id=%s owner=%s objects=%s",
                 recording.stream_id, recording.owner,
                 ",".join(info.object_id for info in stored))

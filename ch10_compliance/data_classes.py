"""The kinds of data this service keeps, each with its own retention.

Chapter 10, "Data retention and deletion policies for audio data". A
retention policy is written per data class, not per table: the same
class may live in several stores (audio in every region's store), and
the deletion job, the subject requests and the compliance matrix all
name data by its class.
"""

from __future__ import annotations

from enum import StrEnum


class DataClass(StrEnum):
    AUDIO = "audio"  # a stream's audio, kept only when it asked
    TRANSCRIPT = "transcript"  # the final transcripts of a kept stream
    USAGE = "usage"  # chapter 8's usage events, for invoices
    AUDIT = "audit"  # this chapter's audit log
    KEY_METADATA = "key_metadata"  # chapter 9's records of API keys

"""How the audit log names a person: a keyed hash, never their id.

Chapter 10, "GDPR for voice data". The audit log is kept for years and
cannot be edited, so an erased person's id must not be in it: the log
would outlive the erasure. Entries name a data subject by an HMAC of
the owner and the subject's id under a server secret (`subj_` and 20
hex digits): stable, so an auditor can follow one person's consents,
streams and erasure through the log; unlinkable without the secret,
so the log alone says nothing about who. Whoever holds the secret and
an id can still find that id's entries, which is what answering an
access request needs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SubjectRefs:
    secret: bytes = field(repr=False)

    @classmethod
    def ephemeral(cls) -> SubjectRefs:
        """A secret of this process only: refs that match nothing
        after a restart (tests, one-off tools)."""
        return cls(secrets.token_bytes(32))

    def __call__(self, owner: str, subject: str) -> str:
        message = f"{len(owner)}:{owner}{subject}".encode()
        digest = hmac.new(self.secret, message, hashlib.sha256)
        return "subj_" + digest.hexdigest()[:20]

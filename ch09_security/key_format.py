"""API keys a scanner can recognise and a server can reject offline.

Chapter 9, "API key management: generation". A key is a fixed prefix,
30 random base62 characters (178 bits: far beyond guessing) and a
6-character base62 CRC32 of the rest, as GitHub's tokens are. The
prefix lets secret scanners find a leaked key in a commit or a log; the
checksum lets them, and this server, reject a mistyped or made-up key
without a database lookup, so a flood of garbage keys never reaches the
database. The underscore keeps a double-click selecting the whole key.
"""

from __future__ import annotations

import secrets
import string
import zlib
from dataclasses import dataclass

PREFIX = "spk_"  # "speech key"
RANDOM_CHARS = 30
CHECKSUM_CHARS = 6  # 62**6 > 2**32: any CRC32 fits
ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
KEY_LENGTH = len(PREFIX) + RANDOM_CHARS + CHECKSUM_CHARS


class MalformedKeyError(ValueError):
    """Not a key of ours: wrong prefix, length, alphabet or checksum."""


def base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


# --8<-- [start:key_format]
def checksum(body: str) -> str:
    """Six base62 characters of the CRC32 of prefix and random part."""
    return base62(zlib.crc32(body.encode()), CHECKSUM_CHARS)


def new_key() -> str:
    body = PREFIX + "".join(
        secrets.choice(ALPHABET) for _ in range(RANDOM_CHARS))
    return body + checksum(body)


def check_format(key: str) -> None:
    """Refuse a key that cannot be ours, before any lookup."""
    if len(key) != KEY_LENGTH or not key.startswith(PREFIX):
        raise MalformedKeyError(
            f"not a {PREFIX} key of {KEY_LENGTH} characters")
    if any(c not in ALPHABET for c in key[len(PREFIX):]):
        raise MalformedKeyError("a key holds only letters and digits")
    body, given = key[:-CHECKSUM_CHARS], key[-CHECKSUM_CHARS:]
    if not secrets.compare_digest(checksum(body), given):
        raise MalformedKeyError("checksum does not match: mistyped?")
# --8<-- [end:key_format]


@dataclass(frozen=True)
class KeyHint:
    """How a key is shown after its creation: never in full."""

    key: str

    def __str__(self) -> str:
        return f"{PREFIX}...{self.key[-4:]}"


def looks_like_key(text: str) -> bool:
    """True if `text` has our prefix: worth checking as a key."""
    return text.startswith(PREFIX)

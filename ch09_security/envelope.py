"""Envelope encryption: a fresh AES-256-GCM key per object, kept wrapped.

Chapter 9, "Securing audio data: encryption at rest (AES-256)". Each
stored object is encrypted once, with AES-256-GCM under a data key of
its own, drawn at random, and a random 96-bit nonce. One key encrypts
one message, so a nonce can never repeat under a key, whatever the
random draw. The data key is kept only wrapped by its owner's
key-encryption key (KEK), with AES key wrap (RFC 3394), which is made
for keys wrapping keys: it needs no nonce, so the number of wraps under
a KEK is bounded only by AES itself (far beyond any object count), and
its integrity check refuses a wrapped key offered to the wrong KEK. The
associated data (what the object is, and whose) is authenticated with
the ciphertext: an object copied under another id or owner fails to
decrypt. Rotation re-wraps data keys and never touches the ciphertext.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

KEY_BITS = 256
NONCE_BYTES = 12  # 96 bits, GCM's own size
TAG_BYTES = 16


class TamperedError(ValueError):
    """A ciphertext, a wrapped key or the associated data was altered,
    or a key was presented to the wrong ciphertext."""


@dataclass(frozen=True)
class Sealed:
    wrapped_key: bytes  # the data key under its owner's KEK (AES-KW)
    nonce: bytes
    ciphertext: bytes  # the plaintext's length plus GCM's 16-byte tag


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BITS)


def wrap_key(kek: bytes, key: bytes) -> bytes:
    return aes_key_wrap(kek, key)


def unwrap_key(kek: bytes, wrapped: bytes) -> bytes:
    try:
        return aes_key_unwrap(kek, wrapped)
    except InvalidUnwrap:
        raise TamperedError("a wrapped key does not unwrap under its "
                            "key-encryption key") from None


# --8<-- [start:envelope_encryption]
def seal(plaintext: bytes, kek: bytes, aad: bytes) -> Sealed:
    """Encrypt under a fresh data key; keep that key only wrapped."""
    data_key = new_key()  # one object, one key
    nonce = os.urandom(NONCE_BYTES)  # one message per key: no reuse
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, aad)
    return Sealed(wrap_key(kek, data_key), nonce, ciphertext)


def unseal(sealed: Sealed, kek: bytes, aad: bytes) -> bytes:
    """The plaintext, if nothing was altered and `aad` is its own."""
    data_key = unwrap_key(kek, sealed.wrapped_key)
    try:
        return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext,
                                        aad)
    except InvalidTag:
        raise TamperedError("the ciphertext or what it is bound to "
                            "(object id, owner) was altered") from None


def rewrap(wrapped_key: bytes, old_kek: bytes, new_kek: bytes) -> bytes:
    """Rotation: the same data key under a new KEK. The ciphertext is
    neither read nor written."""
    return wrap_key(new_kek, unwrap_key(old_kek, wrapped_key))
# --8<-- [end:envelope_encryption]

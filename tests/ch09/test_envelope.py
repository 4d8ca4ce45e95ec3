"""Envelope encryption: a key per object, bound to what it is, re-wrappable."""

from __future__ import annotations

import pytest

from ch09_security.envelope import (
    NONCE_BYTES,
    TAG_BYTES,
    Sealed,
    TamperedError,
    new_key,
    rewrap,
    seal,
    unseal,
)

AUDIO = bytes(range(256)) * 64
AAD = b'["obj_1","acme"]'


def test_a_sealed_object_opens_with_its_kek_and_associated_data() -> None:
    kek = new_key()
    sealed = seal(AUDIO, kek, AAD)
    assert len(kek) == 32 and len(sealed.nonce) == NONCE_BYTES
    assert len(sealed.wrapped_key) == 40  # RFC 3394: the key plus 8 bytes
    assert len(sealed.ciphertext) == len(AUDIO) + TAG_BYTES
    assert AUDIO not in sealed.ciphertext
    assert unseal(sealed, kek, AAD) == AUDIO


def test_each_seal_draws_a_fresh_data_key_and_nonce() -> None:
    kek = new_key()
    first, second = seal(AUDIO, kek, AAD), seal(AUDIO, kek, AAD)
    assert first.wrapped_key != second.wrapped_key
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext


def test_other_associated_data_fails_authentication() -> None:
    kek = new_key()
    sealed = seal(AUDIO, kek, AAD)
    with pytest.raises(TamperedError, match="object id, owner"):
        unseal(sealed, kek, b'["obj_2","acme"]')


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "wrapped_key"])
def test_a_flipped_bit_anywhere_is_refused(field: str) -> None:
    kek = new_key()
    sealed = seal(AUDIO, kek, AAD)
    value = bytearray(getattr(sealed, field))
    value[len(value) // 2] ^= 0x01
    tampered = Sealed(**{**sealed.__dict__, field: bytes(value)})
    with pytest.raises(TamperedError):
        unseal(tampered, kek, AAD)


def test_another_kek_cannot_unwrap_the_data_key() -> None:
    sealed = seal(AUDIO, new_key(), AAD)
    with pytest.raises(TamperedError, match="does not unwrap"):
        unseal(sealed, new_key(), AAD)


def test_rewrapping_moves_the_data_key_and_leaves_the_ciphertext() -> None:
    old, new = new_key(), new_key()
    sealed = seal(AUDIO, old, AAD)
    moved = Sealed(rewrap(sealed.wrapped_key, old, new), sealed.nonce,
                   sealed.ciphertext)
    assert moved.wrapped_key != sealed.wrapped_key
    assert unseal(moved, new, AAD) == AUDIO
    with pytest.raises(TamperedError):
        unseal(moved, old, AAD)

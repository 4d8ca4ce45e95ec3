"""Key format: recognisable, random enough, checked without a lookup."""

from __future__ import annotations

import math

import pytest

from ch09_security.key_format import (
    ALPHABET,
    CHECKSUM_CHARS,
    KEY_LENGTH,
    PREFIX,
    RANDOM_CHARS,
    MalformedKeyError,
    check_format,
    checksum,
    new_key,
)


def test_a_new_key_has_prefix_random_part_and_checksum() -> None:
    key = new_key()
    assert key.startswith(PREFIX) and len(key) == KEY_LENGTH
    check_format(key)  # no error
    body = key[:-CHECKSUM_CHARS]
    assert key[-CHECKSUM_CHARS:] == checksum(body)


def test_the_random_part_holds_at_least_128_bits() -> None:
    assert RANDOM_CHARS * math.log2(len(ALPHABET)) >= 128
    keys = {new_key() for _ in range(1000)}
    assert len(keys) == 1000


@pytest.mark.parametrize("position", [len(PREFIX), KEY_LENGTH // 2,
                                      KEY_LENGTH - 1])
def test_one_mistyped_character_fails_the_checksum(position: int) -> None:
    key = new_key()
    wrong = "a" if key[position] != "a" else "b"
    typo = key[:position] + wrong + key[position + 1:]
    with pytest.raises(MalformedKeyError, match="checksum"):
        check_format(typo)


@pytest.mark.parametrize("text, reason", [
    ("", "characters"),
    ("sk_" + "a" * (KEY_LENGTH - 3), "characters"),
    (PREFIX + "a" * (KEY_LENGTH - len(PREFIX) - 1), "characters"),
    (PREFIX + "-" * (KEY_LENGTH - len(PREFIX)), "letters and digits"),
])
def test_wrong_prefix_length_or_alphabet_is_refused(text: str,
                                                    reason: str) -> None:
    with pytest.raises(MalformedKeyError, match=reason):
        check_format(text)


def test_checksums_fit_their_width_for_any_crc() -> None:
    assert len(ALPHABET) ** CHECKSUM_CHARS > 2**32
    assert len(checksum("x" * 100)) == CHECKSUM_CHARS

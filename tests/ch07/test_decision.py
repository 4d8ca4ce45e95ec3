"""The sync / streaming / long-running decision, and page tokens.

Both are pure functions the chapter prints: the thresholds are the
chapter's (under 1 s, 1 to 30 s, over 30 s), and a token is refused
after any change to any of its bytes.
"""

from __future__ import annotations

import base64

import pytest

from ch07_api.decision import ApiMode, choose_mode
from ch07_api.errors import InvalidRequestError
from ch07_api.page_tokens import PageTokens


@pytest.mark.parametrize(("audio_s", "streams", "mode"), [
    (0.2, True, ApiMode.SYNC),
    (0.999, True, ApiMode.SYNC),
    (1.0, True, ApiMode.STREAMING),
    (12.0, True, ApiMode.STREAMING),
    (12.0, False, ApiMode.SYNC),
    (30.0, True, ApiMode.STREAMING),
    (30.001, False, ApiMode.LONG_RUNNING),
    (3600.0, True, ApiMode.LONG_RUNNING),
])
def test_the_thresholds(audio_s: float, streams: bool,
                        mode: ApiMode) -> None:
    assert choose_mode(audio_s, streams) is mode


def test_a_token_round_trips_and_names_its_collection() -> None:
    tokens = PageTokens(b"k" * 32)
    token = tokens.issue("transcripts", 41)
    assert tokens.read("transcripts", token) == 41
    assert "41" not in token and "transcripts" not in token
    with pytest.raises(InvalidRequestError):
        tokens.read("operations", token)
    with pytest.raises(InvalidRequestError):
        PageTokens(b"x" * 32).read("transcripts", token)


def test_any_changed_byte_is_refused() -> None:
    tokens = PageTokens(b"k" * 32)
    raw = base64.urlsafe_b64decode(tokens.issue("transcripts", 7) + "==")
    for index in range(len(raw)):
        changed = bytearray(raw)
        changed[index] ^= 0x04
        forged = base64.urlsafe_b64encode(bytes(changed)).decode()
        with pytest.raises(InvalidRequestError):
            tokens.read("transcripts", forged)

"""Model versions: aliases resolve to dated names, a deprecated model
says so in its headers until its sunset, then it is gone; each API
version serves the models its table says.
"""

from __future__ import annotations

from datetime import date
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from ch04_streaming.auth import ApiKeys
from ch07_api.app import Parts
from ch07_api.model_versions import (
    ALIASES,
    MODEL_VERSIONS,
    UnknownModelError,
    resolve_model,
    version_table,
)
from tests.ch07.aip_harness import (
    KEY,
    fast_settings,
    fixture_bytes,
    serving,
)

TODAY = date(2026, 12, 6)
FOX = {"file": ("f.wav", fixture_bytes("quick_brown_fox"), "audio/wav")}


def test_aliases_and_dated_names_resolve() -> None:
    assert resolve_model("mock-asr", "v1", TODAY).name == "mock-asr-2026-01"
    assert resolve_model("whisper-1", "v2", TODAY).engine == "full"
    assert resolve_model("mock-asr-mini", "v1", TODAY).engine == "cheaper"
    dated = resolve_model("mock-asr-2025-06", "v1", TODAY)
    assert dated.deprecated and dated.sunset
    assert all(target in {v.name for v in MODEL_VERSIONS}
               for target in ALIASES.values())


@pytest.mark.parametrize(("name", "api", "today", "says"), [
    ("nope", "v1", TODAY, "does not exist"),
    ("mock-asr-2025-06", "v2", TODAY, "served by /v1"),
    ("mock-asr-2025-06", "v1", date(2027, 7, 1), "retired"),
])
def test_what_is_not_served(name: str, api: str, today: date,
                            says: str) -> None:
    with pytest.raises(UnknownModelError, match=says):
        resolve_model(name, api, today)


def test_the_table_has_a_row_per_version() -> None:
    rows = version_table()
    assert [r["model"] for r in rows] == [v.name for v in MODEL_VERSIONS]
    assert rows[0]["aliases"].startswith("mock-asr")


async def test_a_deprecated_model_answers_with_its_sunset(
        tmp_path: Path) -> None:
    async with serving(fast_settings(tmp_path)) as client:
        current = await client.post("/v1/audio/transcriptions",
                                    data={"model": "mock-asr"}, files=FOX)
        assert current.headers["openai-model"] == "mock-asr-2026-01"
        assert "deprecation" not in current.headers
        old = await client.post("/v1/audio/transcriptions",
                                data={"model": "mock-asr-2025-06"},
                                files=FOX)
        assert old.status_code == 200
        assert old.headers["deprecation"] == "@1768435200"  # 2026-01-15
        assert parsedate_to_datetime(old.headers["sunset"]).date() == date(
            2027, 6, 30)
        assert 'rel="successor-version"' in old.headers["link"]
        listed = await client.get("/v1/models")
        assert "mock-asr-2025-06" in [m["id"] for m in
                                      listed.json()["data"]]


async def test_after_its_sunset_a_model_is_gone(tmp_path: Path) -> None:
    parts = Parts(keys=ApiKeys.of(KEY), today=lambda: date(2027, 7, 1))
    async with serving(fast_settings(tmp_path), parts) as client:
        gone = await client.post("/v1/audio/transcriptions",
                                 data={"model": "mock-asr-2025-06"},
                                 files=FOX)
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "model_not_found"
        listed = await client.get("/v1/models")
        assert "mock-asr-2025-06" not in [m["id"] for m in
                                          listed.json()["data"]]

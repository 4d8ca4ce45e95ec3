"""The committed gRPC stubs are what the protos generate, and a change
to a proto that was not regenerated is caught."""

from __future__ import annotations

import shutil
from pathlib import Path

from tools.protos import PROTO_DIR, STUB_PACKAGE, generated_files, stale_stubs

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_stubs_match_the_protos() -> None:
    assert stale_stubs(ROOT) == []


def test_a_proto_changed_without_regenerating_is_caught(
    tmp_path: Path,
) -> None:
    shutil.copytree(ROOT / PROTO_DIR, tmp_path / PROTO_DIR)
    for stub in generated_files(ROOT):
        (tmp_path / stub).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / stub, tmp_path / stub)
    proto = tmp_path / PROTO_DIR / "speech/v1/speech.proto"
    proto.write_text(proto.read_text().replace(
        "bool is_final = 2;", "bool is_final = 2;\n  bool extra = 9;"))
    problems = stale_stubs(tmp_path)
    assert f"{STUB_PACKAGE}/speech/v1/speech_pb2.py: differs from its" \
           " proto; run make protos" in problems

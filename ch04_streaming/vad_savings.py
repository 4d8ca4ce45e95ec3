"""How much audio the VAD keeps away from the model, measured.

Chapter 4, "Voice Activity Detection". Runs the VAD gate over a fixture
(the long conversation by default) exactly as a stream would, and prints
the share of audio that reached inference, with and without the gate.

    python -m ch04_streaming.vad_savings [FILE] [--endpointing-ms 300]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ch04_streaming.audio import AudioDecoder, Encoding
from ch04_streaming.client import load_audio
from ch04_streaming.settings import DEFAULT_MANIFEST
from ch04_streaming.vad import SpeechStarted, VadConfig, build_vad_gate

LONG_FIXTURE = DEFAULT_MANIFEST.parent / "support_call.wav"


@dataclass(frozen=True)
class Savings:
    audio_s: float
    passed_s: float
    utterances: int

    @property
    def share_passed(self) -> float:
        return self.passed_s / self.audio_s if self.audio_s else 0.0


def measure(path: Path, config: VadConfig) -> Savings:
    audio = load_audio(path)
    decoder = AudioDecoder(Encoding(audio.encoding), audio.sample_rate)
    gate = build_vad_gate(config)
    step = audio.bytes_per_second // 10  # 100 ms frames, like a client
    utterances = 0
    for i in range(0, len(audio.payload), step):
        samples = decoder.decode(audio.payload[i : i + step])
        events = gate.push(samples)
        utterances += sum(isinstance(e, SpeechStarted) for e in events)
    gate.push(decoder.flush())
    frame_s = config.frame_ms / 1000
    return Savings(gate.frames_seen * frame_s, gate.frames_passed * frame_s,
                   utterances)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ch04_streaming."
                                     "vad_savings")
    parser.add_argument("file", nargs="?", type=Path, default=LONG_FIXTURE)
    parser.add_argument("--endpointing-ms", type=int, default=300)
    parser.add_argument("--aggressiveness", type=int, default=2)
    args = parser.parse_args(argv)
    config = VadConfig(aggressiveness=args.aggressiveness,
                       endpointing_ms=args.endpointing_ms)
    s = measure(args.file, config)
    print(f"{args.file.name}: {s.audio_s:.1f} s of audio, {s.utterances}"
          f" utterances; {s.passed_s:.1f} s ({s.share_passed:.0%}) reached"
          f" inference, {s.audio_s - s.passed_s:.1f} s"
          f" ({1 - s.share_passed:.0%}) was never sent to the model")
    return 0


if __name__ == "__main__":
    sys.exit(main())

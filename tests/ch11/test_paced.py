"""The real-time factor comes only from audio sent as fast as it goes."""

from __future__ import annotations

from ch11_slo.records import UtteranceRecord
from ch11_slo.sli import real_time_factors


def utterance(index: int, processing_s: float,
              paced: bool) -> UtteranceRecord:
    return UtteranceRecord(
        stream_id="s", utterance_index=index, outcome="ok",
        audio_seconds=4.0, first_result_seconds=0.2,
        final_latency_seconds=0.3, processing_seconds=processing_s,
        reference="hello there", hypothesis="hello there", paced=paced,
    )


def test_paced_audio_says_nothing_of_speed() -> None:
    records = [utterance(0, 4.4, paced=True),
               utterance(1, 0.8, paced=False)]
    assert real_time_factors(records) == [0.2]
    assert real_time_factors(records[:1]) == []

"""The lossy-link lab's WebTransport and WebRTC transports, on a clean
link: in this process, against the services speaking Deepgram's
dialect, whose results say what stream time they cover."""

from __future__ import annotations

import pytest

from ch04_streaming.dialects.deepgram import Deepgram
from ch04_streaming.dialects.openai_realtime import OpenAIRealtime
from ch04_streaming.mock_matcher import Lexicon
from ch05_protocols.lossy_rtc import WebRtcTransport
from ch05_protocols.lossy_speech import speech
from ch05_protocols.lossy_stream import stream_speech
from ch05_protocols.lossy_wt import WebTransportTransport
from ch05_protocols.rtc_settings import RtcSettings, parse_rtc_settings
from ch05_protocols.wt_command import (
    WtSettings,
    parse_wt_settings,
    served_route,
)
from tests.ch04.harness import KEY
from tests.ch05.rtc_harness import running_rtc
from tests.ch05.wt_harness import running_wt_server

SECONDS = 3.0


def test_webtransport_speaks_realtime_unless_told_deepgram() -> None:
    settings = parse_wt_settings(["--dialect", "deepgram"], {})

    assert settings.dialect == "deepgram"
    assert isinstance(served_route(settings.dialect).dialect, Deepgram)
    assert served_route(settings.dialect).query["sample_rate"] == "24000"
    assert isinstance(served_route().dialect, OpenAIRealtime)


def test_webrtc_speaks_realtime_unless_told_deepgram() -> None:
    assert parse_rtc_settings([], {}).dialect == "realtime"
    assert parse_rtc_settings([], {"CH05_RTC_DIALECT": "deepgram"}
                              ).dialect == "deepgram"


def test_an_unknown_dialect_is_refused_by_name(
        capsys: pytest.CaptureFixture[str]) -> None:
    for parse in (parse_wt_settings, parse_rtc_settings):
        with pytest.raises(SystemExit) as stopped:
            parse(["--dialect", "assemblyai"], {})

        assert stopped.value.code == 2
        assert ("--dialect must be one of realtime, deepgram"
                in capsys.readouterr().err)


@pytest.mark.parametrize("mode", ["datagram", "stream"])
async def test_webtransport_streams_are_timed_and_counted(
        lexicon: Lexicon, mode: str) -> None:
    transport = WebTransportTransport(mode, key=KEY)
    audio = speech(SECONDS, transport.rate)
    async with running_wt_server(
            lexicon, WtSettings(dialect="deepgram")) as wt:
        transport.pin = wt.certificate.sha256

        trace = await stream_speech(await transport.connect(wt.server.port),
                                    audio.chunks)

    assert transport.name == f"wt_{mode}s"
    assert len(trace.sent_at) == 150
    assert trace.results  # the fixture's first words, as heard
    assert max(end for end, _ in trace.results) <= SECONDS
    assert trace.received_s == SECONDS  # nothing lost on a clean link


async def test_webrtc_streams_are_timed_and_counted(
        lexicon: Lexicon) -> None:
    transport = WebRtcTransport(key=KEY)
    audio = speech(SECONDS, transport.rate)
    async with running_rtc(lexicon, RtcSettings(dialect="deepgram")) as rtc:
        port = int(rtc.url.rsplit(":", 1)[1])

        trace = await stream_speech(await transport.connect(port),
                                    audio.chunks)

    assert len(trace.sent_at) == 150
    assert trace.results
    # The half second of silence after the speech is heard too.
    assert max(end for end, _ in trace.results) <= SECONDS + 0.5
    assert trace.received_s == SECONDS

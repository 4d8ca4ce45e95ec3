"""`python -m ch05_protocols`: the dispatcher, and the `ws` server run
as an operator would, both framings on one port."""

from __future__ import annotations

import pytest

from ch04_streaming.client import DIALECTS, load_audio, stream
from ch05_protocols.__main__ import COMMANDS, main
from ch05_protocols.ws_client import base64_client, base64_frame
from examples.realtime_sdk import pcm24k, transcribe
from examples.service import running_service, wait_until_ready
from tests.ch04.harness import audio_of, reference


def test_every_command_is_listed(capsys: pytest.CaptureFixture[str]
                                 ) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in COMMANDS)


def test_an_unknown_command_is_refused() -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["teleport"])
    assert stopped.value.code == 2


def test_a_command_gets_its_own_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["choose", "--client", "server"]) == 0
    assert capsys.readouterr().out.startswith("use WebSocket")


async def test_ws_serves_base64_beside_deepgram() -> None:
    args = ("-m", "ch05_protocols", "ws", "--port", "0", "--load-s", "0",
            "--warmup-s", "0", "--lexicon-cache", "")
    audio = load_audio(audio_of("low_latency"))
    env = {"SPEECH_API_KEYS": "ws-key"}
    async with running_service(args, env=env) as service:
        assert any("/ws/base64" in line for line in service.banner)
        await wait_until_ready(service.port)
        url = f"ws://127.0.0.1:{service.port}"
        text = await stream(url, base64_client(), "ws-key", audio,
                            frame_audio=base64_frame)
        binary = await stream(url, DIALECTS["deepgram"], "ws-key", audio)
        openai = await transcribe(f"http://127.0.0.1:{service.port}/v1",
                                  "ws-key", pcm24k(audio_of("low_latency")))
    assert text.transcript == binary.transcript == reference("low_latency")
    assert " ".join(openai.transcripts) == reference("low_latency")

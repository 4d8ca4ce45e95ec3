"""Starting a service as a process: its port, and a clear failure."""

from __future__ import annotations

import pytest

from examples.service import running_service


async def test_port_is_read_from_the_listening_line() -> None:
    script = "print('starting'); print('listening on ws://127.0.0.1:4321')"
    async with running_service(("-c", script)) as service:
        assert service.port == 4321 and service.pid > 0


async def test_a_service_that_dies_at_start_is_reported() -> None:
    with pytest.raises(RuntimeError, match="exited at start"):
        async with running_service(("-c", "print('no port')")):
            pass

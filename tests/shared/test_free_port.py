"""``scripts.processes.free_port``: the ports the tests and benchmarks give their servers."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from scripts.processes import free_port

RealSocket = socket.socket


def test_a_port_is_free_and_never_handed_out_twice_in_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = free_port()
    with RealSocket() as probe:
        probe.bind(("127.0.0.1", first))  # nothing holds it

    # The kernel offers that port again (free to it: nothing is bound there yet), then others.
    offers = [first, first]

    class Probe(RealSocket):
        def getsockname(self) -> Any:
            return ("127.0.0.1", offers.pop()) if offers else super().getsockname()

    monkeypatch.setattr(socket, "socket", Probe)
    second = free_port()
    assert second != first
    assert not offers  # both offers of the same port were passed over

"""``scripts.processes.free_port``: the ports the tests and benchmarks give their servers."""

from __future__ import annotations

import socket

import pytest

from scripts.processes import free_port


def refused(port: int) -> bool:
    with socket.socket() as client:
        try:
            client.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


def test_a_handed_out_port_is_refused_and_held_against_other_takers() -> None:
    port = free_port()
    assert refused(port)
    # Anyone else's bind (another worker's server, a client's source port) finds it taken.
    with socket.socket() as other, pytest.raises(OSError, match="Address already in use"):
        other.bind(("127.0.0.1", port))
    assert free_port() != port


def test_a_server_binds_a_handed_out_port_and_it_is_refused_again_once_it_stops() -> None:
    port = free_port()
    with socket.socket() as server:  # as uvicorn, Redis and PostgreSQL listen
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.sendall(b"up")
            assert client.recv(2) == b"up"
            accepted.close()
    assert refused(port)

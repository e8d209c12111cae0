"""Real TLS connections through ``shared.db.create_engine`` to the test PostgreSQL.

The embedded server's build has no TLS, so a TLS-terminating front stands before it, as
Neon's proxy stands before Neon's compute: it completes PostgreSQL's TLS negotiation with a
certificate for ``localhost`` only, issued by a test CA, and relays to the server. verify-full
with that CA connects by the name and is refused by the address (host name mismatch) and with
another CA; verify-ca connects by the address (no host name check); a Neon-shaped URL
(``channel_binding=require``) verifies against the system store, which does not know the test
CA; plain ``require`` connects unverified.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.db import create_engine
from tests.support.raw_server import raw_server
from tests.support.tls import PostgresTlsFront, TestCA


@dataclass(frozen=True)
class TlsServer:
    port: int
    front: PostgresTlsFront
    ca_file: Path
    other_ca_file: Path

    def url(self, host: str, query: str) -> str:
        return f"postgresql://postgres@{host}:{self.port}/postgres?{query}"


@pytest.fixture
async def tls_server(database_url: str, tmp_path: Path) -> AsyncIterator[TlsServer]:
    ca, other_ca = TestCA("platform test CA"), TestCA("some other CA")
    front = PostgresTlsFront(ca.issue("localhost"), database_url)
    async with raw_server(front) as address:
        port = int(address.rsplit(":", 1)[1])
        yield TlsServer(
            port, front, ca.write(tmp_path / "ca.crt"), other_ca.write(tmp_path / "other.crt")
        )


async def query_over(url: str) -> int:
    engine = create_engine(url, connect_timeout=5)
    try:
        async with engine.connect() as connection:
            answer: int = (await connection.execute(text("SELECT 41 + 1"))).scalar_one()
            return answer
    finally:
        await engine.dispose()


async def refusal(url: str) -> ssl.SSLCertVerificationError:
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        await query_over(url)
    return refused.value


async def test_verify_full_with_the_right_ca_connects(tls_server: TlsServer) -> None:
    url = tls_server.url("localhost", f"sslmode=verify-full&sslrootcert={tls_server.ca_file}")

    assert await query_over(url) == 42
    assert tls_server.front.handshakes == 1


async def test_verify_full_with_another_ca_is_refused(tls_server: TlsServer) -> None:
    url = tls_server.url("localhost", f"sslmode=verify-full&sslrootcert={tls_server.other_ca_file}")
    assert "certificate verify failed" in str(await refusal(url))
    assert tls_server.front.handshakes == 0


async def test_verify_full_to_a_name_the_certificate_does_not_carry_is_refused(
    tls_server: TlsServer,
) -> None:
    # The certificate is for "localhost"; 127.0.0.1 is the same server under another name.
    url = tls_server.url("127.0.0.1", f"sslmode=verify-full&sslrootcert={tls_server.ca_file}")
    assert "mismatch" in str(await refusal(url)).lower()
    assert tls_server.front.handshakes == 0


async def test_verify_ca_checks_the_chain_but_not_the_name(tls_server: TlsServer) -> None:
    right = tls_server.url("127.0.0.1", f"sslmode=verify-ca&sslrootcert={tls_server.ca_file}")
    wrong = tls_server.url("127.0.0.1", f"sslmode=verify-ca&sslrootcert={tls_server.other_ca_file}")
    assert await query_over(right) == 42
    assert "certificate verify failed" in str(await refusal(wrong))


async def test_a_neon_shaped_url_verifies_against_the_system_store(tls_server: TlsServer) -> None:
    # sslmode=require&channel_binding=require used to connect without any certificate check.
    url = tls_server.url("localhost", "sslmode=require&channel_binding=require")
    assert "certificate verify failed" in str(await refusal(url))
    assert tls_server.front.handshakes == 0


async def test_plain_require_encrypts_without_verifying(tls_server: TlsServer) -> None:
    assert await query_over(tls_server.url("127.0.0.1", "sslmode=require")) == 42
    assert tls_server.front.handshakes == 1

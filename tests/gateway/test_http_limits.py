"""The gateway's HTTP limits (``shared.server``), over raw sockets to the served gateway: what a
client may send before the gateway routes a request, and how slowly it may send it."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from prometheus_client import REGISTRY

from tests.support.raw_server import (
    assert_refusal,
    connect,
    many_headers,
    read_response,
    send_and_read,
)

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n"


async def test_a_9_kib_url_is_414_in_the_envelope(start_gateway):
    async with start_gateway() as (_, client):
        url = str(client.base_url)
        path = b"/api/tasks/" + b"a" * 9 * 1024
        response = await send_and_read(url, b"GET " + path + b" HTTP/1.1\r\nHost: g\r\n\r\n")
    assert_refusal(response, 414, "url_too_long")


async def test_a_100000_character_query_is_414_in_the_envelope_not_plain_text(start_gateway):
    async with start_gateway() as (_, client):
        url = str(client.base_url)
        target = b"/api/tasks?q=" + b"x" * 100_000
        response = await send_and_read(url, b"GET " + target + b" HTTP/1.1\r\nHost: g\r\n\r\n")
    assert_refusal(response, 414, "url_too_long")


async def test_a_100_kib_header_is_431(start_gateway):
    async with start_gateway() as (_, client):
        huge = b"X-Huge: " + b"h" * 100 * 1024 + b"\r\n"
        response = await send_and_read(str(client.base_url), HEALTHZ + huge + b"\r\n")
    status, _, body = response
    assert status == 431
    # Refused by whichever bound the reads reach first: the field's or the section's.
    assert json.loads(body)["code"] in {"header_field_too_large", "header_section_too_large"}


async def test_one_header_over_8_kib_is_431(start_gateway):
    async with start_gateway() as (_, client):
        header = b"X-Big: " + b"h" * (8 * 1024 + 1) + b"\r\n"
        response = await send_and_read(str(client.base_url), HEALTHZ + header + b"\r\n")
    assert_refusal(response, 431, "header_field_too_large")


async def test_1000_small_headers_are_431_and_counted(start_gateway):
    def refused() -> float:
        return (
            REGISTRY.get_sample_value("http_requests_refused_total", {"code": "too_many_headers"})
            or 0.0
        )

    before = refused()
    async with start_gateway() as (_, client):
        response = await send_and_read(str(client.base_url), HEALTHZ + many_headers(1000) + b"\r\n")
    assert_refusal(response, 431, "too_many_headers")
    assert refused() == before + 1


async def test_an_8_mib_header_streamed_in_4_kib_pieces_is_refused_after_the_section_limit(
    start_gateway,
):
    piece = b"h" * 4096
    async with start_gateway() as (_, client):
        reader, writer = await connect(str(client.base_url))
        answer = asyncio.ensure_future(read_response(reader))
        sent = 0
        try:
            async with asyncio.timeout(20):
                writer.write(HEALTHZ + b"X-Endless: ")
                for _ in range(8 * 1024 * 1024 // len(piece)):
                    if answer.done():
                        break
                    writer.write(piece)
                    await writer.drain()
                    sent += len(piece)
                    await asyncio.sleep(0.001)  # the server reads each piece as it comes
                response = await answer
                # Our side shut: the rest of the header is not waited for.
                assert await reader.read() == b""
        finally:
            answer.cancel()
            writer.close()
    assert_refusal(response, 431, "header_section_too_large")
    assert sent <= 64 * 1024, f"answered only after {sent} bytes"


async def test_a_request_that_is_not_http_is_400_in_the_envelope(start_gateway):
    async with start_gateway() as (_, client):
        response = await send_and_read(str(client.base_url), b"HELLO THERE\r\n\r\n")
    assert_refusal(response, 400, "invalid_http")


async def test_an_http_1_1_request_without_host_is_400_in_the_envelope(start_gateway):
    async with start_gateway() as (_, client):
        response = await send_and_read(str(client.base_url), b"GET /healthz HTTP/1.1\r\n\r\n")
    assert_refusal(response, 400, "missing_host")


async def test_an_http_1_0_request_without_host_is_answered(start_gateway):
    async with start_gateway() as (_, client):
        response = await send_and_read(str(client.base_url), b"GET /healthz HTTP/1.0\r\n\r\n")
    status, _, body = response
    assert status == 200, body


async def test_a_malformed_chunked_body_is_400_in_the_envelope(start_gateway):
    async with start_gateway() as (_, client):
        response = await send_and_read(
            str(client.base_url),
            b"POST /api/auth/login HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\nzz\r\n",
        )
    assert_refusal(response, 400, "invalid_http")


async def test_headers_trickled_past_the_header_timeout_are_408_and_closed(start_gateway):
    async with start_gateway(header_timeout_seconds=0.5) as (_, client):
        reader, writer = await connect(str(client.base_url))
        started = time.monotonic()
        answer = asyncio.ensure_future(read_response(reader))
        try:
            async with asyncio.timeout(10):
                writer.write(HEALTHZ)
                # A header every 0.1 s: never idle, yet never done.
                for index in range(100):
                    if answer.done():
                        break
                    writer.write(b"x-slow-%d: 1\r\n" % index)
                    await asyncio.sleep(0.1)
                response = await answer
                assert await reader.read() == b""
        finally:
            answer.cancel()
            writer.close()
    assert_refusal(response, 408, "request_timeout")
    assert 0.4 < time.monotonic() - started < 3


async def test_many_slow_header_connections_are_all_closed(start_gateway):
    async def slow(url: str, opening: bytes) -> bytes:
        reader, writer = await connect(url)
        try:
            writer.write(opening)
            return await reader.read()
        finally:
            writer.close()

    async with start_gateway(header_timeout_seconds=0.5) as (_, client):
        url = str(client.base_url)
        started = time.monotonic()
        async with asyncio.timeout(10):
            # Half send part of a request line, half send nothing at all.
            outcomes = await asyncio.gather(
                *(slow(url, b"GET /healthz HTTP/1.1\r\nHo" if i % 2 else b"") for i in range(40))
            )
    assert time.monotonic() - started < 5
    assert all(b" 408 " in outcome for outcome in outcomes[1::2])
    assert outcomes[0::2] == [b""] * 20  # nothing was asked, nothing is answered


async def test_a_body_that_stops_arriving_is_408_and_closed(start_gateway):
    async with start_gateway(body_timeout_seconds=0.5) as (_, client):
        reader, writer = await connect(str(client.base_url))
        started = time.monotonic()
        try:
            async with asyncio.timeout(10):
                writer.write(
                    b"POST /api/auth/login HTTP/1.1\r\nHost: g\r\n"
                    b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"email":'
                )
                response = await read_response(reader)
                assert await reader.read() == b""
        finally:
            writer.close()
    assert_refusal(response, 408, "request_timeout")
    assert 0.4 < time.monotonic() - started < 3


async def send_in_pieces(
    client: httpx.AsyncClient, token: bytes, body: bytes, piece: int
) -> tuple[int, bytes]:
    """POST ``body`` to /api/tasks in pieces of ``piece`` bytes 0.2 s apart; the answer's
    status and body."""
    reader, writer = await connect(str(client.base_url))
    try:
        async with asyncio.timeout(10):
            writer.write(
                b"POST /api/tasks HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer "
                + token
                + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
            )
            for offset in range(0, len(body), piece):
                await asyncio.sleep(0.2)
                writer.write(body[offset : offset + piece])
            status, _, answer = await read_response(reader)
    finally:
        writer.close()
    return status, answer


async def test_a_body_that_keeps_arriving_slowly_is_not_cut(echo, start_gateway, issuer):
    upstream, upstream_url = echo
    body = b"x" * 75
    async with start_gateway(todo_url=upstream_url, body_timeout_seconds=2.0) as (_, client):
        # Fifteen pieces 0.2 s apart: 3 s in all, never 2 s without a byte (a margin that a
        # loaded machine's pauses do not eat).
        status, answer = await send_in_pieces(client, issuer.mint("ann").encode(), body, 5)
    assert status == 200, answer
    assert upstream.requests[-1]["body_length"] == len(body)


async def test_limits_count_each_request_of_a_kept_alive_connection_afresh(start_gateway):
    # 90 headers and about 30 KiB a request: within the limits one at a time, far over them
    # if counted together.
    request = HEALTHZ + many_headers(90, size=320) + b"\r\n"
    assert 28 * 1024 < len(request) < 32 * 1024
    async with start_gateway() as (_, client):
        reader, writer = await connect(str(client.base_url))
        try:
            async with asyncio.timeout(10):
                for _ in range(4):
                    writer.write(request)
                    status, _, _ = await read_response(reader)
                    assert status == 200
                # Pipelined: three in one write.
                writer.write(request * 3)
                statuses = [(await read_response(reader))[0] for _ in range(3)]
        finally:
            writer.close()
    assert statuses == [200, 200, 200]


async def test_a_refused_request_is_answered_after_the_pipelined_ones_before_it(start_gateway):
    async with start_gateway() as (_, client):
        reader, writer = await connect(str(client.base_url))
        try:
            async with asyncio.timeout(10):
                writer.write(HEALTHZ + b"\r\n" + HEALTHZ + many_headers(1000) + b"\r\n")
                first = await read_response(reader)
                second = await read_response(reader)
                assert await reader.read() == b""
        finally:
            writer.close()
    assert first[0] == 200
    assert_refusal(second, 431, "too_many_headers")


async def keep_sending(
    writer: asyncio.StreamWriter, piece: bytes, pause: float
) -> tuple[float, int]:
    """Write ``piece`` every ``pause`` seconds until the peer resets the connection; returns
    the seconds it took and the bytes written."""
    started = time.monotonic()
    sent = 0
    async with asyncio.timeout(10):
        while True:
            try:
                writer.write(piece)
                await writer.drain()
            except ConnectionError:
                return time.monotonic() - started, sent
            sent += len(piece)
            await asyncio.sleep(pause)


async def test_a_refused_client_that_keeps_sending_fast_is_cut_off_after_a_mebibyte(
    start_gateway,
):
    async with start_gateway() as (_, client):
        reader, writer = await connect(str(client.base_url))
        try:
            writer.write(HEALTHZ + many_headers(1000) + b"\r\n")
            assert_refusal(await read_response(reader), 431, "too_many_headers")
            _, sent = await keep_sending(writer, b"x" * 64 * 1024, 0)
            # 1 MiB read and dropped, plus what the sockets' buffers held.
            assert sent < 8 * 1024 * 1024
        finally:
            writer.close()


async def test_a_refused_client_that_keeps_trickling_is_cut_off_after_two_seconds(
    start_gateway,
):
    async with start_gateway() as (_, client):
        reader, writer = await connect(str(client.base_url))
        try:
            writer.write(HEALTHZ + many_headers(1000) + b"\r\n")
            assert_refusal(await read_response(reader), 431, "too_many_headers")
            took, _ = await keep_sending(writer, b"x", 0.1)
            assert 1.5 < took < 4
        finally:
            writer.close()


async def trickle(writer: asyncio.StreamWriter, pause: float) -> None:
    """Send one byte every ``pause`` seconds until the peer closes the connection."""
    while True:
        try:
            writer.write(b"x")
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(pause)


async def test_a_body_trickled_below_the_minimum_rate_is_408_and_closed(start_gateway):
    # Never silent for the body timeout, so only the rate bounds it: 1,000 bytes at 5 bytes a
    # second would hold the connection for over three minutes (and a mebibyte for months).
    async with start_gateway(
        body_timeout_seconds=0.5, min_body_rate_bytes_per_second=100, body_rate_grace_seconds=0.5
    ) as (_, client):
        reader, writer = await connect(str(client.base_url))
        started = time.monotonic()
        writer.write(
            b"POST /api/auth/login HTTP/1.1\r\nHost: g\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        sender = asyncio.create_task(trickle(writer, 0.2))
        try:
            async with asyncio.timeout(10):
                response = await read_response(reader)
                assert await reader.read() == b""
        finally:
            sender.cancel()
            writer.close()
    assert_refusal(response, 408, "request_body_too_slow")
    assert 0.5 < time.monotonic() - started < 3


async def test_a_body_above_the_minimum_rate_is_not_cut(echo, start_gateway, issuer):
    upstream, upstream_url = echo
    body = b"x" * 400
    async with start_gateway(
        todo_url=upstream_url,
        body_timeout_seconds=2.0,
        min_body_rate_bytes_per_second=50,
        body_rate_grace_seconds=1.0,
    ) as (_, client):
        # 40 bytes every 0.2 s (200 a second) for 2 s: four times the minimum rate.
        status, answer = await send_in_pieces(client, issuer.mint("ann").encode(), body, 40)
    assert status == 200, answer
    assert upstream.requests[-1]["body_length"] == len(body)

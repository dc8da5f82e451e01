"""The aiohttp transport against real sockets: answers, streams, and which httpx error each
failure becomes (connect-phase errors only when nothing was sent)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import orjson
import pytest
from aiohttp import web

from gateway.backends.aiohttp_transport import AiohttpTransport
from gateway.backends.vllm import VLLMBackend
from gateway.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnreachable
from gateway.openai_api import Endpoint

pytestmark = pytest.mark.anyio
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _site(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _raw(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    return head + await reader.readexactly(length)


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the request, never answers."""
    try:
        await _read_request(reader)
        await asyncio.sleep(10)
    finally:
        writer.close()


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the request, then closes the connection without a word."""
    await _read_request(reader)
    writer.close()


def _client(base_url: str, **timeouts: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=8, keepalive_expiry=2.0)
    timeout = httpx.Timeout(timeouts.get("read", 5.0), connect=timeouts.get("connect", 2.0))
    return httpx.AsyncClient(base_url=base_url, transport=AiohttpTransport(limits), timeout=timeout)


async def test_json_round_trip_headers_and_one_reused_connection() -> None:
    seen: list[tuple[bytes, str | None, object]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append((await request.read(), request.headers.get("X-Trace"), request.transport))
        return web.json_response({"got": orjson.loads(await request.read())}, status=201)

    app = web.Application()
    app.router.add_post("/v1/echo", echo)
    async for base in _site(app):
        async with _client(base) as client:
            for i in range(3):
                r = await client.post("/v1/echo", json={"i": i}, headers={"X-Trace": "t1"})
                assert r.status_code == 201 and r.json() == {"got": {"i": i}}
    assert [s[1] for s in seen] == ["t1"] * 3
    assert len({id(s[2]) for s in seen}) == 1  # keep-alive: one connection for all three


async def test_a_stream_arrives_in_pieces_and_closing_early_drops_the_connection() -> None:
    gone = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for i in range(1000):
                await response.write(f"data: {i}\n\n".encode())
                await asyncio.sleep(0.01)
        except (ConnectionResetError, asyncio.CancelledError):
            gone.set()
            raise
        return response

    app = web.Application()
    app.router.add_get("/events", events)
    async for base in _site(app):
        async with _client(base) as client:
            async with client.stream("GET", "/events") as r:
                lines = []
                async for line in r.aiter_lines():
                    if line:
                        lines.append(line)
                    if len(lines) == 3:
                        break
            assert lines == ["data: 0", "data: 1", "data: 2"]
            await asyncio.wait_for(gone.wait(), 5)


async def test_connection_refused_is_a_connect_error() -> None:
    server, base = await _raw(lambda r, w: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    async with _client(base) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post("/v1/chat/completions", content=b"{}")


async def test_a_disconnect_after_the_request_was_sent_is_not_a_connect_error() -> None:
    received = asyncio.Event()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        received.set()
        writer.close()

    server, base = await _raw(hang_up)
    async with server, _client(base) as client:
        with pytest.raises(httpx.TransportError) as info:
            await client.post("/v1/chat/completions", content=b'{"model": "m"}')
    assert received.is_set()
    assert not isinstance(info.value, httpx.ConnectError | httpx.ConnectTimeout)
    assert isinstance(info.value, httpx.RemoteProtocolError)


async def test_a_body_cut_short_is_a_remote_protocol_error() -> None:
    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial":')
        await writer.drain()
        writer.close()

    server, base = await _raw(truncated)
    async with server, _client(base) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/v1/chat/completions", content=b"{}")


async def test_no_answer_in_time_is_a_read_timeout() -> None:
    server, base = await _raw(_silent)
    async with server, _client(base, read=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/chat/completions", content=b"{}")


async def test_the_vllm_backend_uses_it_and_keeps_retry_safety() -> None:
    server, base = await _raw(_hang_up)
    async with server:
        backend = VLLMBackend(base)
        try:
            with pytest.raises(UpstreamBadResponse):  # 502: sent, so not retried elsewhere
                await backend.complete(Endpoint.CHAT, {"model": "m", "messages": []})
        finally:
            await backend.aclose()
    backend = VLLMBackend(base, connect_timeout_s=0.5)  # server closed: nothing listens
    try:
        with pytest.raises(UpstreamUnreachable):
            await backend.complete(Endpoint.CHAT, {"model": "m", "messages": []})
    finally:
        await backend.aclose()


async def test_the_vllm_backend_times_out_a_silent_server() -> None:
    server, base = await _raw(_silent)
    async with server:
        backend = VLLMBackend(base, read_timeout_s=0.3)
        try:
            with pytest.raises(UpstreamTimeout):
                await backend.complete(Endpoint.CHAT, {"model": "m", "messages": []})
        finally:
            await backend.aclose()

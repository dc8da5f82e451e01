"""vLLM's OpenAI-compatible server over one pooled ``httpx.AsyncClient`` (on an aiohttp
transport by default: :mod:`gateway.backends.aiohttp_transport`).

Failures map onto the error tree: no connection (refused, connect timeout) -> 503
``UpstreamUnreachable`` (nothing was sent, so the fleet may try another replica), timeout -> 504,
5xx or malformed answer -> 502, the upstream's own 4xx -> passed on with its status and message.
The transport is the seam for tests: pass ``httpx.MockTransport`` to fake vLLM without a server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import httpx
import orjson

from gateway.backends.aiohttp_transport import AiohttpTransport
from gateway.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamUnreachable,
)
from gateway.openai_api import JSON, Endpoint


class TranslateErrors:
    """Turn httpx's exceptions into the gateway's upstream errors."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, UpstreamError):
            return
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            raise UpstreamUnreachable("the model server is unreachable") from exc
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            raise UpstreamTimeout("the model server did not answer in time") from exc
        if isinstance(exc, httpx.HTTPError):
            raise UpstreamBadResponse(
                f"the model server connection failed: {type(exc).__name__}"
            ) from exc


def _raise_for_status(status: int, raw: bytes) -> None:
    if status < 400:
        return
    message, code = f"the model server answered HTTP {status}", None
    try:
        err = orjson.loads(raw).get("error") if raw else None
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            code = str(err["code"]) if isinstance(err.get("code"), str) else None
        elif isinstance(err, str):  # some servers answer {"error": "text"}
            message = err
    except (orjson.JSONDecodeError, AttributeError):
        pass
    if 400 <= status < 500 and status not in (401, 403, 408, 429):
        raise UpstreamRejected(message, status_code=status, code=code)
    if status == 503:
        raise UpstreamUnavailable(message)
    if status == 504 or status == 408:
        raise UpstreamTimeout(message)
    raise UpstreamBadResponse(message)


class VLLMStream:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def data(self) -> AsyncIterator[bytes]:
        async with TranslateErrors():
            async for line in self._response.aiter_lines():
                if line.startswith("data:"):
                    yield line[5:].strip().encode("utf-8")

    async def aclose(self) -> None:
        # Closing the response closes its connection, which makes vLLM abort the request.
        await self._response.aclose()


KEEPALIVE_EXPIRY_S = 2.0


class VLLMBackend:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 120.0,
        max_connections: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # httpx's read timeout restarts with every byte, so a drip-fed answer would never end:
        # a non-streamed answer (vLLM sends it whole, at the end) must be done by this deadline.
        self._deadline_s = connect_timeout_s + read_timeout_s
        # Idle connections are dropped well before vLLM's (uvicorn's) 5 s keep-alive ends
        # them: at equal timeouts a request races the server's close and fails (ReadError).
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        )
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            limits=limits,
            transport=transport or AiohttpTransport(limits),
        )

    async def complete(
        self, endpoint: Endpoint, body: JSON, headers: Mapping[str, str] | None = None
    ) -> JSON:
        async with TranslateErrors(), asyncio.timeout(self._deadline_s):
            response = await self._client.post(
                endpoint.value, content=orjson.dumps(body), headers={**_JSON, **(headers or {})}
            )
        _raise_for_status(response.status_code, response.content)
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse("the model server sent malformed JSON") from None
        if not isinstance(answer, dict):
            raise UpstreamBadResponse("the model server sent JSON that is not an object")
        return answer

    async def open_stream(
        self, endpoint: Endpoint, body: JSON, headers: Mapping[str, str] | None = None
    ) -> VLLMStream:
        request = self._client.build_request(
            "POST", endpoint.value, content=orjson.dumps(body), headers={**_JSON, **(headers or {})}
        )
        async with TranslateErrors():
            response = await self._client.send(request, stream=True)
        if response.status_code >= 400:
            try:
                async with TranslateErrors():
                    raw = await response.aread()
            finally:
                await response.aclose()
            _raise_for_status(response.status_code, raw)
        return VLLMStream(response)

    async def model_ids(self) -> list[str]:
        data = await self._get_json("/v1/models")
        items = data.get("data")
        if not isinstance(items, list):
            raise UpstreamBadResponse("the model server's /v1/models has no 'data' list")
        return [str(m["id"]) for m in items if isinstance(m, dict) and "id" in m]

    async def load_adapter(self, name: str, path: str) -> None:
        payload = {"lora_name": name, "lora_path": path}
        async with TranslateErrors():
            response = await self._client.post("/v1/load_lora_adapter", json=payload)
        if response.status_code == 400 and b"already been loaded" in response.content:
            return
        _raise_for_status(response.status_code, response.content)

    async def unload_adapter(self, name: str) -> None:
        async with TranslateErrors():
            response = await self._client.post("/v1/unload_lora_adapter", json={"lora_name": name})
        if response.status_code in (400, 404) and name.encode() in response.content:
            return  # vLLM says it is not loaded: the goal is reached
        _raise_for_status(response.status_code, response.content)

    async def metrics_text(self) -> str:
        async with TranslateErrors():
            response = await self._client.get("/metrics")
        _raise_for_status(response.status_code, response.content)
        return response.text

    async def _get_json(self, path: str) -> dict[str, Any]:
        async with TranslateErrors():
            response = await self._client.get(path)
        _raise_for_status(response.status_code, response.content)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"the model server's {path} is not JSON") from None
        if not isinstance(data, dict):
            raise UpstreamBadResponse(f"the model server's {path} is not a JSON object")
        return data

    async def aclose(self) -> None:
        await self._client.aclose()


_JSON = {"Content-Type": "application/json"}

"""A route to any provider litellm supports, used per model as the fallback when no vLLM replica
can answer (see :mod:`gateway.backends.fleet`).

litellm is imported when the first such backend is built, never at gateway import, and with
``LITELLM_LOCAL_MODEL_COST_MAP=True`` so importing it makes no network call. The client's
OpenAI fields pass through; ones the provider does not support are dropped (``drop_params``).
Provider errors map onto the gateway's upstream errors by type, never by text.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import (
    ConfigError,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from gateway.openai_api import JSON, Endpoint


class FallbackRoute(BaseModel):
    """One model's fallback, e.g. ``{"model": "openai/gpt-4o-mini"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str = Field(min_length=1, description="litellm model string: provider/model")
    api_base: str | None = Field(None, description="provider URL; default: litellm's")
    api_key_env: str | None = Field(None, description="environment variable holding the key")
    timeout_s: float = Field(60.0, gt=0)


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


class LiteLLMStream:
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def data(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield orjson.dumps(chunk.model_dump(exclude_none=True))
        except Exception as exc:
            raise translate(exc) from exc
        yield b"[DONE]"

    async def aclose(self) -> None:
        await self._stream.aclose()


class LiteLLMBackend:
    def __init__(self, route: FallbackRoute) -> None:
        self.route = route
        self._litellm = _litellm()
        api_key = os.environ.get(route.api_key_env) if route.api_key_env else None
        if route.api_key_env and api_key is None:
            raise ConfigError(f"fallback {route.model!r}: ${route.api_key_env} is not set")
        self._options: dict[str, Any] = {
            "model": route.model,
            "timeout": route.timeout_s,
            "drop_params": True,
            "num_retries": 0,
        }
        if route.api_base:
            self._options["api_base"] = route.api_base
        if api_key:
            self._options["api_key"] = api_key

    async def _call(self, endpoint: Endpoint, body: JSON, stream: bool) -> Any:
        params = {k: v for k, v in body.items() if k not in ("model", "stream")}
        call = (
            self._litellm.acompletion
            if endpoint is Endpoint.CHAT
            else self._litellm.atext_completion
        )
        try:
            return await call(**params, **self._options, stream=stream)
        except Exception as exc:
            raise translate(exc) from exc

    async def complete(
        self, endpoint: Endpoint, body: JSON, headers: Mapping[str, str] | None = None
    ) -> JSON:
        answer = await self._call(endpoint, body, stream=False)
        dumped: JSON = answer.model_dump(exclude_none=True)
        return dumped

    async def open_stream(
        self, endpoint: Endpoint, body: JSON, headers: Mapping[str, str] | None = None
    ) -> LiteLLMStream:
        return LiteLLMStream(await self._call(endpoint, body, stream=True))

    async def model_ids(self) -> list[str]:
        return [self.route.model]

    async def load_adapter(self, name: str, path: str) -> None:
        raise ConfigError("a litellm route cannot load LoRA adapters")

    async def aclose(self) -> None:
        """Close litellm's cached clients (module-wide), so none outlives this event loop."""
        await self._litellm.close_litellm_async_clients()
        self._litellm.in_memory_llm_clients_cache.flush_cache()


def translate(exc: Exception) -> UpstreamError:
    """litellm's exceptions (openai's types with a status) -> the gateway's."""
    errors = _litellm().exceptions
    message = f"the fallback provider failed: {type(exc).__name__}"
    if isinstance(exc, errors.Timeout):
        return UpstreamTimeout(message)
    if isinstance(exc, errors.APIConnectionError) or _connect_error_in(exc):
        return UpstreamUnreachable(message)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in (401, 403, 408, 429):
        return UpstreamRejected(message, status_code=status, code=None)
    return UpstreamBadResponse(message)


def _connect_error_in(exc: BaseException) -> bool:
    """litellm reports some refused connections as a 500: look down the cause chain."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, httpx.ConnectError | ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False

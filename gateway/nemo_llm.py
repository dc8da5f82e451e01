"""The served model as NeMo Guardrails' LLM, for the rules that ask for one.

NeMo calls its LLM through a small protocol (``nemoguardrails.types.LLMModel``:
``generate_async``, ``stream_async`` and three names). This adapter implements it over vLLM's
OpenAI-compatible API with one ``httpx.AsyncClient`` (the transport is the seam for tests):
a string prompt goes to ``/v1/completions``, a message list to ``/v1/chat/completions``. It
talks to vLLM directly, not through the gateway, so the rail's own prompt is not itself
guarded; temperature 0 unless NeMo asks otherwise, and ``max_tokens`` bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from gateway.errors import UpstreamBadResponse

MAX_TOKENS = 32
"""Enough for an intent name ("ask about politics"); NeMo reads the first line."""


def _message(message: Any) -> dict[str, Any]:
    role = getattr(message.role, "value", message.role)
    return {"role": str(role), "content": message.content or ""}


class ServedModelLLM:
    """NeMo ``LLMModel`` backed by one model that vLLM serves at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._model = model
        self._timeout = timeout_s
        self._transport = transport

    @property
    def model_name(self) -> str:
        return self._model

    @property
    def provider_name(self) -> str | None:
        return "vllm"

    @property
    def provider_url(self) -> str | None:
        return self._base_url

    async def generate_async(
        self, prompt: str | list[Any], *, stop: list[str] | None = None, **kwargs: Any
    ) -> Any:
        from nemoguardrails.types import LLMResponse

        body: dict[str, Any] = {
            "model": self._model,
            "temperature": kwargs.get("temperature") or 0.0,
            "max_tokens": min(int(kwargs.get("max_tokens") or MAX_TOKENS), MAX_TOKENS),
        }
        if stop:
            body["stop"] = stop
        if isinstance(prompt, str):
            path, body["prompt"] = "/v1/completions", prompt
        else:
            path, body["messages"] = "/v1/chat/completions", [_message(m) for m in prompt]
        # One client per call: NeMo may call from the event loop of a load-time thread too.
        async with httpx.AsyncClient(
            base_url=self._base_url, timeout=self._timeout, transport=self._transport
        ) as client:
            response = await client.post(path, json=body)
        if response.status_code != 200:
            raise UpstreamBadResponse(f"NeMo rail LLM call: vLLM answered {response.status_code}")
        try:
            choice = response.json()["choices"][0]
            text = choice["text"] if "text" in choice else choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamBadResponse(f"NeMo rail LLM call: malformed answer ({exc})") from None
        return LLMResponse(content=str(text or ""), model=self._model)

    async def stream_async(
        self, prompt: str | list[Any], *, stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        from nemoguardrails.types import LLMResponseChunk

        response = await self.generate_async(prompt, stop=stop, **kwargs)
        yield LLMResponseChunk(delta_content=response.content, model=self._model)

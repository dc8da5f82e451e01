"""A small client for vLLM's OpenAI-compatible server (httpx): chat answers for many prompts at
once (vLLM batches concurrent requests), and runtime LoRA loading. ``transport`` is the seam
for tests (``httpx.MockTransport``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

Message = Mapping[str, str]
"""A chat message: ``{"role": ..., "content": ...}``."""


class VLLMError(RuntimeError):
    """vLLM answered with an error or could not be reached."""


class VLLMClient:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 1800.0,
        concurrency: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.transport = transport

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, timeout=self.timeout_s, transport=self.transport
        )

    async def _chat_all(
        self, model: str, conversations: Sequence[Sequence[Message]], max_tokens: int
    ) -> list[str]:
        gate = asyncio.Semaphore(self.concurrency)
        async with self._client() as client:

            async def one(messages: Sequence[Message]) -> str:
                body = {
                    "model": model,
                    "messages": [dict(m) for m in messages],
                    "max_tokens": max_tokens,
                    "temperature": 0.0,
                }
                async with gate:
                    try:
                        r = await client.post("/v1/chat/completions", json=body)
                    except httpx.HTTPError as exc:
                        raise VLLMError(f"{self.url}: {exc!r}") from None
                if r.status_code != 200:
                    raise VLLMError(f"{self.url} model {model!r}: HTTP {r.status_code} {r.text}")
                content = r.json()["choices"][0]["message"].get("content")
                return str(content or "")

            return list(await asyncio.gather(*(one(c) for c in conversations)))

    def chat(self, model: str, prompts: Sequence[str], *, max_tokens: int = 128) -> list[str]:
        """Greedy answers (temperature 0) to single-turn prompts, in order."""
        return self.chat_conversations(
            model, [[{"role": "user", "content": p}] for p in prompts], max_tokens=max_tokens
        )

    def chat_conversations(
        self, model: str, conversations: Sequence[Sequence[Message]], *, max_tokens: int = 128
    ) -> list[str]:
        """Greedy answers (temperature 0) to the last user turn of each conversation (a list
        of ``{"role", "content"}`` messages), in order."""
        return asyncio.run(self._chat_all(model, conversations, max_tokens))

    async def _post(self, path: str, body: dict[str, str]) -> httpx.Response:
        async with self._client() as client:
            try:
                return await client.post(path, json=body)
            except httpx.HTTPError as exc:
                raise VLLMError(f"{self.url}: {exc!r}") from None

    def load_adapter(self, name: str, path: Path) -> None:
        """Load a LoRA adapter at run time (vLLM needs VLLM_ALLOW_RUNTIME_LORA_UPDATING)."""
        body = {"lora_name": name, "lora_path": str(path.resolve())}
        r = asyncio.run(self._post("/v1/load_lora_adapter", body))
        if r.status_code != 200:
            raise VLLMError(f"loading adapter {name!r}: HTTP {r.status_code} {r.text}")

    def unload_adapter(self, name: str) -> None:
        r = asyncio.run(self._post("/v1/unload_lora_adapter", {"lora_name": name}))
        if r.status_code != 200:
            raise VLLMError(f"unloading adapter {name!r}: HTTP {r.status_code} {r.text}")

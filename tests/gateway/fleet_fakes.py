"""Fake vLLM replicas behind one httpx.MockTransport, told apart by host: each keeps its own
loaded-adapter set, answers /v1/models, load/unload, chat; a replica can be 'down'."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import httpx
import orjson

from tests.conftest import BASE, chat_answer


@dataclass
class FakeReplica:
    host: str
    models: set[str] = field(default_factory=lambda: {BASE})
    down: bool = False
    fail_status: int | None = None  # answer completions with this status
    load_delay_s: float = 0.0
    loads: Counter[str] = field(default_factory=Counter)
    served: list[str] = field(default_factory=list)
    loading_now: int = 0
    max_concurrent_loads: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": m} for m in sorted(self.models)]})
        body = orjson.loads(request.content) if request.content else {}
        if path == "/v1/load_lora_adapter":
            name = body["lora_name"]
            if name in self.models:
                return httpx.Response(400, json={"error": {"message": "has already been loaded"}})
            self.loading_now += 1
            self.max_concurrent_loads = max(self.max_concurrent_loads, self.loading_now)
            await asyncio.sleep(self.load_delay_s)
            self.loading_now -= 1
            self.loads[name] += 1
            self.models.add(name)
            return httpx.Response(200, text="ok")
        if path == "/v1/unload_lora_adapter":
            self.models.discard(body["lora_name"])
            return httpx.Response(200, text="ok")
        if self.fail_status is not None:
            return httpx.Response(self.fail_status, text="failing")
        if body.get("model") not in self.models:
            return httpx.Response(404, json={"error": {"message": "model does not exist"}})
        self.served.append(body["model"])
        return httpx.Response(200, json=chat_answer(f"from {self.host}", body["model"]))


class FakeFleet:
    def __init__(self, *hosts: str) -> None:
        self.replicas = {h: FakeReplica(h) for h in hosts}

    def __getitem__(self, host: str) -> FakeReplica:
        return self.replicas[host]

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.replicas.values()]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        return await self.replicas[request.url.host].handle(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

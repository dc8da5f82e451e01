"""Shared fixtures: a gateway app per test, with vLLM faked by httpx.MockTransport."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gateway.app import create_app
from gateway.auth import KeyStore, add_key
from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[1]
BASE = "smollm2-135m-instruct"

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        upstream_url="http://vllm.test",  # type: ignore[arg-type]
        adapters_dir=REPO / "adapters",
        policy_file=REPO / "policies" / "default.yaml",
        keys_file=tmp_path / "keys.json",
        events_path=tmp_path / "events.sqlite3",
        upstream_read_timeout_s=2.0,
        max_body_bytes=64 * 1024,
    )


@pytest.fixture
def api_key(settings: Settings) -> str:
    return add_key(settings.keys_file, "tester")


def chat_answer(
    content: str = "The capital of France is Paris.", model: str = BASE
) -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }


def sse_body(pieces: list[str], model: str = BASE) -> bytes:
    import orjson

    events = [
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        }
    ]
    for piece in pieces:
        events.append(
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {"content": piece}}],
            }
        )
    out = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    return out + b"data: [DONE]\n\n"


def sse_response(pieces: list[str], model: str = BASE) -> httpx.Response:
    """vLLM's streamed answer of ``pieces`` (:func:`sse_body`), as an ``httpx`` response."""
    return httpx.Response(
        200, content=sse_body(pieces, model), headers={"content-type": "text/event-stream"}
    )


class FakeVLLM:
    """Records what reached 'vLLM' and answers with the handler a test sets."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.handler: Handler = lambda request: httpx.Response(200, json=chat_answer())

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def completions(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith("completions")]


def fake_app(settings: Settings, fake_vllm: FakeVLLM, **kwargs: Any) -> Starlette:
    """The gateway in front of ``fake_vllm``, with the keys of ``settings.keys_file`` and no
    adapter reconcile (the fake has no vLLM admin API); ``kwargs`` go to ``create_app``."""
    return create_app(
        settings,
        transport=httpx.MockTransport(fake_vllm),
        keys=KeyStore.load(settings.keys_file),
        reconcile=False,
        **kwargs,
    )


def gateway_client(app: Starlette, api_key: str, **kwargs: Any) -> httpx.AsyncClient:
    """A client of ``app`` (in process, no sockets) that sends ``api_key``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway.test",
        headers={"Authorization": f"Bearer {api_key}"},
        **kwargs,
    )


@contextlib.asynccontextmanager
async def serving(app: Starlette, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` with its lifespan running (event store, watchers, reconcile) and a client of it
    that sends ``api_key``."""
    async with app.router.lifespan_context(app), gateway_client(app, api_key, timeout=30) as client:
        yield client


@pytest.fixture
def fake_vllm() -> FakeVLLM:
    return FakeVLLM()


@pytest.fixture
async def client(
    settings: Settings, api_key: str, fake_vllm: FakeVLLM
) -> AsyncIterator[httpx.AsyncClient]:
    app = fake_app(
        settings,
        fake_vllm,
    )
    async with gateway_client(app, api_key) as c:
        c.app = app  # type: ignore[attr-defined]
        yield c

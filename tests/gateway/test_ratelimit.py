"""Per-key request and token limits through the app: in process, and shared through a real
redis-server by two gateway instances."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.auth import KeyStore, add_key
from gateway.settings import Settings
from tests.conftest import BASE, FakeVLLM, gateway_client, sse_body
from tests.redis_server import redis_server

pytestmark = pytest.mark.anyio
CHAT = "/v1/chat/completions"
ASK = {"model": BASE, "messages": [{"role": "user", "content": "What is the capital?"}]}


def app_for(settings: Settings, fake: FakeVLLM) -> Starlette:
    return create_app(
        settings,
        transport=httpx.MockTransport(fake),
        keys=KeyStore.load(settings.keys_file),
        reconcile=False,
    )


async def test_request_limit_answers_429_with_retry_after(
    settings: Settings, fake_vllm: FakeVLLM
) -> None:
    limited = add_key(settings.keys_file, "limited", requests_per_minute=2)
    other = add_key(settings.keys_file, "other")
    app = app_for(settings, fake_vllm)
    async with gateway_client(app, limited) as c:
        assert [(await c.post(CHAT, json=ASK)).status_code for _ in range(2)] == [200, 200]
        r = await c.post(CHAT, json=ASK)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert len(fake_vllm.completions()) == 2  # the third never reached vLLM
    async with gateway_client(app, other) as c:
        assert (await c.post(CHAT, json=ASK)).status_code == 200


async def test_token_limit_counts_what_answers_used(
    settings: Settings, fake_vllm: FakeVLLM
) -> None:
    key = add_key(settings.keys_file, "tokens", tokens_per_minute=20)  # answers use 12
    app = app_for(settings, fake_vllm)
    async with gateway_client(app, key) as c:
        assert (await c.post(CHAT, json=ASK)).status_code == 200
        assert (await c.post(CHAT, json=ASK)).status_code == 200  # 12 < 20: admitted, overdraws
        r = await c.post(CHAT, json=ASK)
    assert r.status_code == 429 and "tokens per minute" in r.json()["error"]["message"]


async def test_streams_spend_their_tokens_when_they_close(
    settings: Settings, fake_vllm: FakeVLLM
) -> None:
    key = add_key(settings.keys_file, "stream", tokens_per_minute=8)
    fake_vllm.handler = lambda req: httpx.Response(
        200, content=sse_body(["Par", "is ", "is ", "the ", "cap", "ital", "."])
    )
    app = app_for(settings, fake_vllm)
    async with gateway_client(app, key) as c:
        r = await c.post(CHAT, json={**ASK, "stream": True})
        assert r.status_code == 200 and "[DONE]" in r.text
        r = await c.post(CHAT, json={**ASK, "stream": True})
    assert r.status_code == 429  # 7 chunks + prompt estimate (5) went over 8


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path) as url:
        yield url


async def test_limits_hold_across_two_gateways_sharing_redis(
    settings: Settings, fake_vllm: FakeVLLM, redis_url: str
) -> None:
    key = add_key(settings.keys_file, "shared", requests_per_minute=3)
    shared = settings.model_copy(update={"ratelimit_redis_url": SecretStr(redis_url)})
    one, two = app_for(shared, fake_vllm), app_for(shared, fake_vllm)
    codes = []
    async with gateway_client(one, key) as c1, gateway_client(two, key) as c2:
        for c in (c1, c2, c1, c2, c1):
            codes.append((await c.post(CHAT, json=ASK)).status_code)
    assert codes == [200, 200, 200, 429, 429]
    for app in (one, two):
        await app.state.gateway.limits.aclose()
        await app.state.gateway.backend.aclose()

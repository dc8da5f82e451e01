"""Per-key request and token rate limits, in process or shared through Redis.

Built on :pypi:`limits` (fixed one-minute windows): ``MemoryStorage`` by default, its Redis
storage on the ``redis`` package's asyncio client when ``GATEWAY_RATELIMIT_REDIS_URL`` is set,
so several gateway processes share one count per key.

- Requests: each request takes one from the key's ``requests_per_minute``; over it -> 429.
- Tokens: a request is admitted while the key's window has tokens left; what the answer
  actually used (``usage.total_tokens``, or an estimate for a stream without usage) is spent
  afterwards. So one request can overdraw the window; the next waits for the reset.

Over a limit -> :class:`~gateway.errors.RateLimited` (429, ``Retry-After`` = seconds to reset).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter

from gateway.auth import Principal
from gateway.backends.base import UpstreamStream
from gateway.errors import RateLimited


class RateLimits:
    def __init__(self, redis_url: str | None = None) -> None:
        self._pool: Any = None
        storage: MemoryStorage | RedisStorage
        if redis_url:
            import redis.asyncio

            self._pool = redis.asyncio.ConnectionPool.from_url(redis_url)
            storage = RedisStorage(
                "async+" + redis_url, implementation="redispy", connection_pool=self._pool
            )
        else:
            storage = MemoryStorage()
        self._limiter = FixedWindowRateLimiter(storage)

    async def admit(self, principal: Principal) -> None:
        """Count this request; raise RateLimited when the key is over either limit."""
        if principal.tokens_per_minute is not None:
            item = RateLimitItemPerMinute(principal.tokens_per_minute, namespace="tokens")
            if not await self._limiter.test(item, principal.name):
                raise await self._limited(item, principal, "tokens")
        if principal.requests_per_minute is not None:
            item = RateLimitItemPerMinute(principal.requests_per_minute, namespace="requests")
            if not await self._limiter.hit(item, principal.name):
                raise await self._limited(item, principal, "requests")

    async def spend(self, principal: Principal, tokens: int) -> None:
        if principal.tokens_per_minute is not None and tokens > 0:
            item = RateLimitItemPerMinute(principal.tokens_per_minute, namespace="tokens")
            await self._limiter.hit(item, principal.name, cost=tokens)

    async def _limited(
        self, item: RateLimitItemPerMinute, who: Principal, what: str
    ) -> RateLimited:
        stats = await self._limiter.get_window_stats(item, who.name)
        return RateLimited(
            f"rate limit reached for this API key: {item.amount} {what} per minute",
            retry_after_s=max(1.0, stats.reset_time - time.time()),
        )

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()


def answer_tokens(answer: dict[str, Any]) -> int:
    usage = answer.get("usage")
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) else 0


class MeteredStream:
    """Passes a stream through and spends its tokens when it closes: the final usage chunk's
    ``total_tokens`` when the upstream sent one, else one token per content chunk plus the
    prompt estimate (vLLM sends about one token per chunk)."""

    def __init__(
        self, stream: UpstreamStream, limits: RateLimits, who: Principal, prompt_estimate: int
    ) -> None:
        self._stream, self._limits, self._who = stream, limits, who
        self._estimate, self._usage = prompt_estimate, 0
        self._spent = False

    async def data(self) -> AsyncIterator[bytes]:
        async for payload in self._stream.data():
            self._count(payload)
            yield payload

    def _count(self, payload: bytes) -> None:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(chunk, dict):
            return
        total = answer_tokens(chunk)
        if total:
            self._usage = total
        elif chunk.get("choices"):
            self._estimate += 1

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if not self._spent:
                self._spent = True
                await self._limits.spend(self._who, self._usage or self._estimate)

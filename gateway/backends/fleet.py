"""Several vLLM replicas behind one :class:`~gateway.backends.base.Backend`.

Routing, per request: the replicas that are healthy (last probe answered), whose breaker lets a
request through, and that have the requested model loaded; of those, the one with the fewest
outstanding requests (ties: the one picked least recently).

Retries: only when no connection could be made (``UpstreamUnreachable``), so nothing was sent
and no byte reached the client; then the next replica is tried. Once a stream is open it is
never retried. Any other failure (timeout, 5xx) counts against the replica's breaker and is
passed on.

Fallback: when no replica can serve the model (all down, or none has it loaded), a configured
per-model fallback backend (``gateway.backends.litellm``) answers instead, if there is one.
The guard pipeline runs in the routes around whichever backend answers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import structlog

from gateway.backends.base import Backend, UpstreamStream
from gateway.backends.replica import Replica
from gateway.errors import (
    GatewayError,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
    UpstreamUnreachable,
)
from gateway.openai_api import JSON, Endpoint

log = structlog.get_logger("gateway.fleet")
T = TypeVar("T")


class _Tracked:
    """An open stream that keeps its replica's outstanding count until it is closed."""

    def __init__(self, stream: UpstreamStream, replica: Replica) -> None:
        self._stream, self._replica, self._open = stream, replica, True

    def data(self) -> AsyncIterator[bytes]:
        return self._stream.data()

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self._replica.outstanding -= 1
        await self._stream.aclose()


class Fleet:
    def __init__(
        self, replicas: Sequence[Replica], fallbacks: Mapping[str, Backend] | None = None
    ) -> None:
        if not replicas:
            raise ValueError("a fleet needs at least one replica")
        self.replicas = list(replicas)
        self.fallbacks = dict(fallbacks or {})
        self._ticks = itertools.count(1)

    def candidates(self, model: str) -> list[Replica]:
        """Replicas that may serve ``model`` now, best first."""
        able = [r for r in self.replicas if r.can_serve(model)]
        return sorted(able, key=lambda r: (r.outstanding, r.picked))

    async def complete(
        self, endpoint: Endpoint, body: JSON, headers: Mapping[str, str] | None = None
    ) -> JSON:
        async def call(replica: Replica) -> JSON:
            try:
                return await replica.backend.complete(endpoint, body, headers)
            finally:
                replica.outstanding -= 1

        fallback = self.fallbacks.get(str(body.get("model")))
        return await self._route(
            str(body.get("model")),
            call,
            (lambda: fallback.complete(endpoint, body, headers)) if fallback else None,
        )

    async def open_stream(
        self, endpoint: Endpoint, body: JSON, headers: Mapping[str, str] | None = None
    ) -> UpstreamStream:
        async def call(replica: Replica) -> UpstreamStream:
            try:
                stream = await replica.backend.open_stream(endpoint, body, headers)
            except BaseException:
                replica.outstanding -= 1
                raise
            return _Tracked(stream, replica)

        fallback = self.fallbacks.get(str(body.get("model")))
        return await self._route(
            str(body.get("model")),
            call,
            (lambda: fallback.open_stream(endpoint, body, headers)) if fallback else None,
        )

    async def _route(
        self,
        model: str,
        call: Callable[[Replica], Awaitable[T]],
        fallback: Callable[[], Awaitable[T]] | None,
    ) -> T:
        last: UpstreamError | None = None
        for replica in self.candidates(model):
            if not replica.can_serve(model):  # its state changed while we tried another
                continue
            replica.picked = next(self._ticks)
            replica.breaker.acquire()
            replica.outstanding += 1
            try:
                result = await call(replica)
            except UpstreamRejected:
                replica.breaker.success()  # it answered: the replica is fine, the request not
                raise
            except UpstreamUnreachable as exc:
                replica.breaker.failure()
                replica.healthy, replica.last_error, last = False, exc.message, exc
                log.warning("replica_unreachable", replica=replica.url, model=model)
                continue  # nothing was sent: try the next replica
            except UpstreamError:
                replica.breaker.failure()
                raise
            replica.breaker.success()
            return result
        if fallback is not None:
            log.warning("fallback_route", model=model, reason=last.message if last else "none")
            return await fallback()
        if last is not None:
            raise last
        raise UpstreamUnavailable(f"no healthy model server has {model!r} loaded right now")

    async def model_ids(self) -> list[str]:
        """Models loaded on every replica that answers a probe now (for readiness)."""
        results = await asyncio.gather(*(r.probe() for r in self.replicas), return_exceptions=True)
        served = [r for r in results if isinstance(r, frozenset)]
        if not served:
            errors = [r for r in results if isinstance(r, GatewayError)]
            raise errors[0] if errors else UpstreamUnavailable("no model server answered")
        return sorted(frozenset.intersection(*served))

    async def load_adapter(self, name: str, path: str) -> None:
        """Load on every replica (the lifecycle in gateway/lifecycle.py adds locking)."""
        for replica in self.replicas:
            await replica.backend.load_adapter(name, path)
            replica.loaded(name)

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.backend.aclose()
        for fallback in self.fallbacks.values():
            await fallback.aclose()

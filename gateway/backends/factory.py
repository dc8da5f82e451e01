"""Build the backend the routes use from settings: the vLLM fleet and its fallback routes."""

from __future__ import annotations

import httpx

from gateway.backends.base import Backend
from gateway.backends.breaker import CircuitBreaker
from gateway.backends.fleet import Fleet
from gateway.backends.replica import Replica
from gateway.backends.vllm import VLLMBackend
from gateway.settings import Settings


def build_fleet(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> Fleet:
    """One :class:`Replica` per upstream URL; litellm is imported only if a fallback is set."""
    replicas = [
        Replica(
            url,
            VLLMBackend(
                url,
                api_key=settings.upstream_api_key,
                connect_timeout_s=settings.upstream_connect_timeout_s,
                read_timeout_s=settings.upstream_read_timeout_s,
                max_connections=settings.upstream_max_connections,
                transport=transport,
            ),
            CircuitBreaker(settings.upstream_failure_threshold, settings.upstream_breaker_reset_s),
        )
        for url in settings.upstreams()
    ]
    fallbacks: dict[str, Backend] = {}
    if settings.fallback_routes:
        from gateway.backends.litellm import LiteLLMBackend

        fallbacks = {m: LiteLLMBackend(r) for m, r in settings.fallback_routes.items()}
    return Fleet(replicas, fallbacks)

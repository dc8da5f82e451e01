"""One vLLM replica as the router sees it: its client, breaker, load and what it has loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.backends.breaker import CircuitBreaker
from gateway.backends.vllm import VLLMBackend
from gateway.errors import GatewayError


@dataclass(eq=False)
class Replica:
    url: str
    backend: VLLMBackend
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    outstanding: int = 0
    """Requests sent and not finished (a stream counts until it closes)."""
    models: frozenset[str] | None = None
    """What its ``/v1/models`` said at the last probe or load; None until first seen."""
    healthy: bool = True
    """False after a failed probe, until a probe succeeds (optimistic before the first)."""
    last_error: str | None = None
    picked: int = 0
    """When the router last chose it (a counter): ties on load go to the least recent."""

    def can_serve(self, model: str) -> bool:
        if not (self.healthy and self.breaker.available()):
            return False
        return self.models is None or model in self.models

    def loaded(self, name: str) -> None:
        self.models = frozenset({*(self.models or ()), name})

    def unloaded(self, name: str) -> None:
        if self.models is not None:
            self.models = self.models - {name}

    async def probe(self) -> frozenset[str]:
        """Health check: ``/v1/models``. Updates health, the breaker and the loaded set."""
        try:
            served = frozenset(await self.backend.model_ids())
        except GatewayError as exc:
            self.healthy, self.last_error = False, exc.message
            self.breaker.failure()
            raise
        self.healthy, self.last_error, self.models = True, None, served
        self.breaker.success()
        return served

    def describe(self) -> dict[str, object]:
        return {
            "url": self.url,
            "healthy": self.healthy,
            "breaker": self.breaker.state.value,
            "outstanding": self.outstanding,
            "models": sorted(self.models) if self.models is not None else None,
            "last_error": self.last_error,
        }

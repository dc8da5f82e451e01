"""The gateway's long-lived parts, built once at start and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry.trace import Tracer
from starlette.requests import Request

from gateway.adapters import Catalog
from gateway.audit import Audit
from gateway.auth import KeyStore
from gateway.backends.base import Backend
from gateway.events import EventRecorder, NoEvents
from gateway.lifecycle import AdapterLifecycle
from gateway.metrics import Metrics
from gateway.policy import Policy
from gateway.ratelimit import RateLimits
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.policy_binding import PolicyBindings


class PolicyHolder:
    """The current policy. A request takes one reference at its start and keeps it to the end,
    so a swap never changes the rules under a request in flight."""

    def __init__(self, policy: Policy) -> None:
        self.current = policy

    def swap(self, policy: Policy) -> None:
        self.current = policy


@dataclass(frozen=True, slots=True)
class Gateway:
    settings: Settings
    keys: KeyStore
    catalog: Catalog
    policies: PolicyHolder
    backend: Backend
    metrics: Metrics
    audit: Audit
    tracer: Tracer
    events: EventRecorder = field(default_factory=NoEvents)
    lifecycle: AdapterLifecycle | None = None  # the adapter fleet (admin API, reconcile)
    limits: RateLimits = field(default_factory=RateLimits)
    bindings: PolicyBindings | None = None  # policies bound by key / model (policy_binding.py)

    def policy_for(self, key_name: str, model: str) -> Policy:
        """The policy a request gets: bound to its key, else to its model, else the default."""
        bound = self.bindings.select(key_name, model) if self.bindings is not None else None
        return bound if bound is not None else self.policies.current


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw

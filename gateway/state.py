"""The gateway's long-lived parts, built once at start and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.trace import Tracer
from starlette.requests import Request

from gateway.adapters import Catalog
from gateway.audit import Audit
from gateway.auth import KeyStore
from gateway.backends.base import Backend
from gateway.events import EventRecorder, NoEvents
from gateway.metrics import Metrics
from gateway.policy import Policy
from gateway.settings import Settings


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


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw

"""Pure ASGI middleware (no ``BaseHTTPMiddleware``: it breaks streaming).

:class:`RequestContext` gives every request an id (``x-request-id``, kept from the client when
sane), binds it into structlog's context, and records request count, latency and in-flight.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics import Metrics

_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ROUTE_LABELS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/models", "/healthz", "/readyz", "/metrics"}
)


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        path = scope["path"]
        route = path if path in ROUTE_LABELS else "other"
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            model = state.get("model", "none")
            self.metrics.requests.labels(route, model, str(status)).inc()
            self.metrics.request_duration.labels(route, model).observe(
                time.perf_counter() - started
            )


def _incoming_id(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"x-request-id":
            text = value.decode("latin-1")
            return text if _ID.match(text) else None
    return None

"""OpenTelemetry tracing: a span per request, child spans per guard rule and for the upstream
call, OTel GenAI semantic-convention attributes, ``traceparent`` propagated to vLLM.

Off by default, at no cost: without ``OTEL_TRACES_EXPORTER`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``
(and with no provider passed in), the API's no-op tracer is used. When on, the OTLP exporter is
configured by the standard ``OTEL_*`` variables. The provider is per app, never global.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import Tracer, TracerProvider

TRACER_NAME = "gateway"


def tracing_requested(env: Mapping[str, str] = os.environ) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "")
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT")) or exporter not in ("", "none")


def build_tracer(provider: TracerProvider | None = None) -> Tracer:
    """The app's tracer: the given provider's, an OTLP one when OTEL_* asks, else a no-op."""
    if provider is None and tracing_requested():
        provider = _otlp_provider()
    if provider is None:
        return trace.NoOpTracer()
    return provider.get_tracer(TRACER_NAME)


def _otlp_provider() -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "gateway")})
    provider = SDKTracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def propagation_headers() -> dict[str, str]:
    """``traceparent`` (and baggage) for the current span, to send upstream."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None

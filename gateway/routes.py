"""The endpoints. Each reads top to bottom: auth -> body -> model -> input checks -> backend ->
output checks -> response. Errors are raised, never built here (see :mod:`gateway.errors`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.adapters import ModelRoute
from gateway.auth import Principal
from gateway.canary import add_canary, canary_scope, new_canary, plants_canary
from gateway.errors import (
    BodyTooLarge,
    GatewayError,
    PolicyViolation,
    UnsupportedMediaType,
    UpstreamError,
    json_response,
)
from gateway.openai_api import (
    JSON,
    Endpoint,
    answer_segments,
    apply_text,
    input_segments,
    parse_body,
    require_model,
    wants_stream,
)
from gateway.openapi import openapi_json
from gateway.pipeline import Action, CheckContext, PipelineResult, Stage
from gateway.policy import Policy
from gateway.ratelimit import MeteredStream, answer_tokens
from gateway.sse import SSEResponse
from gateway.state import Gateway, gateway_of
from gateway.streaming import StreamGuard, guarded_events
from gateway.telemetry import OPERATION, record_answer, request_attributes
from gateway.tracing import current_trace_id, propagation_headers

SERVED_AT = int(time.time())


async def chat_completions(request: Request) -> Response:
    return await _completion(request, Endpoint.CHAT)


async def completions(request: Request) -> Response:
    return await _completion(request, Endpoint.COMPLETIONS)


async def _completion(request: Request, endpoint: Endpoint) -> Response:
    """One span per request; a stream's span ends when the stream does."""
    gw = gateway_of(request)
    span = gw.tracer.start_span(f"{OPERATION[endpoint]} gateway", kind=SpanKind.SERVER)
    try:
        with trace.use_span(
            span, end_on_exit=False, record_exception=True, set_status_on_exception=True
        ):
            response = await _guarded_completion(gw, request, endpoint, span)
    except BaseException:
        span.end()
        raise
    if isinstance(response, SSEResponse):
        response.on_close = span.end
    else:
        span.end()
    return response


async def _guarded_completion(
    gw: Gateway, request: Request, endpoint: Endpoint, span: Span
) -> Response:
    principal = gw.keys.authenticate(request.headers.get("authorization"))
    await gw.limits.admit(principal)  # 429 with Retry-After (gateway/ratelimit.py)
    body = parse_body(await _read_body(request, gw.settings.max_body_bytes))
    route = gw.catalog.resolve(require_model(body), principal)
    request.scope.setdefault("state", {})["model"] = route.public
    span.update_name(f"{OPERATION[endpoint]} {route.public}")
    span.set_attributes(request_attributes(endpoint, route.public, body))
    stream = wants_stream(body)
    policy = gw.policy_for(principal.name, route.public)  # kept to the end (policy_binding.py)

    ctx = CheckContext(endpoint, route.public, Stage.INPUT, principal.name, _request_id(request))
    checked = await policy.input.run(input_segments(endpoint, body), ctx)
    _keep(gw, checked, ctx, policy, route)
    if checked.blocked:
        raise _violation(checked)
    for segment, original in zip(checked.segments, input_segments(endpoint, body), strict=True):
        if segment.text != original.text:
            apply_text(body, original, segment.text)
    if checked.action is Action.ROUTE and checked.route_to:
        route = gw.catalog.resolve(checked.route_to, _trusted(principal))

    body["model"] = route.upstream
    canary = new_canary() if endpoint is Endpoint.CHAT and plants_canary(policy.output) else None
    if canary is not None:  # after the input checks: the system prompt is the gateway's
        body = add_canary(body, canary)
    span.set_attribute("gateway.policy", policy.name)
    span.set_attribute("gateway.input_action", checked.action.value)
    if route.adapter is not None:
        span.set_attribute("gateway.adapter", route.adapter.name)
    out_ctx = CheckContext(endpoint, route.public, Stage.OUTPUT, principal.name, ctx.request_id)
    if stream:
        return await _stream(gw, endpoint, body, route, out_ctx, principal, policy, canary)
    started = time.perf_counter()
    with gw.tracer.start_as_current_span(f"POST {endpoint.value}", kind=SpanKind.CLIENT):
        try:
            answer = await gw.backend.complete(endpoint, body, propagation_headers())
        except UpstreamError as exc:
            gw.metrics.upstream_errors.labels(exc.code).inc()
            raise
    gw.metrics.upstream_duration.labels(route.public).observe(time.perf_counter() - started)
    record_answer(span, gw.metrics, route.public, answer)
    await gw.limits.spend(principal, answer_tokens(answer))
    with canary_scope(canary):
        result = await _output(gw, policy, endpoint, answer, out_ctx, route)
    return _checked_answer(gw, endpoint, answer, route, out_ctx, result)


async def _output(
    gw: Gateway,
    policy: Policy,
    endpoint: Endpoint,
    answer: JSON,
    ctx: CheckContext,
    route: ModelRoute,
) -> PipelineResult:
    result = await policy.output.run(answer_segments(endpoint, answer), ctx)
    _keep(gw, result, ctx, policy, route)
    return result


def _checked_answer(
    gw: Gateway,
    endpoint: Endpoint,
    answer: JSON,
    route: ModelRoute,
    ctx: CheckContext,
    result: PipelineResult,
) -> Response:
    if result.action in (Action.BLOCK, Action.ROUTE):
        raise _violation(result)
    for segment, original in zip(result.segments, answer_segments(endpoint, answer), strict=True):
        if segment.text != original.text:
            apply_text(answer, original, segment.text)
    answer["model"] = route.public
    return json_response(answer)


async def _stream(
    gw: Gateway,
    endpoint: Endpoint,
    body: JSON,
    route: ModelRoute,
    ctx: CheckContext,
    principal: Principal,
    policy: Policy,
    canary: str | None,
) -> Response:
    started = time.perf_counter()
    with gw.tracer.start_as_current_span(f"POST {endpoint.value}", kind=SpanKind.CLIENT):
        try:
            upstream = await gw.backend.open_stream(endpoint, body, propagation_headers())
        except UpstreamError as exc:
            gw.metrics.upstream_errors.labels(exc.code).inc()
            raise
    if principal.tokens_per_minute is not None:  # spends what the stream used when it closes
        prompt = sum(len(s.text) for s in input_segments(endpoint, body)) // 4
        upstream = MeteredStream(upstream, gw.limits, principal, prompt)
    gw.metrics.upstream_duration.labels(route.public).observe(time.perf_counter() - started)
    trace_id = current_trace_id()  # on_error runs outside the span
    guard = StreamGuard(policy.output, ctx, endpoint)

    def keep_verdict() -> None:  # cut off by an output rule, or only flagged/shadowed to the end
        if guard.result is not None:
            _keep(gw, guard.result, ctx, policy, route, trace_id)

    def on_error(exc: GatewayError) -> None:
        if isinstance(exc, PolicyViolation):
            for rule in exc.rules:
                gw.metrics.stream_cutoffs.labels(rule).inc()
            keep_verdict()
        else:
            gw.metrics.upstream_errors.labels(exc.code).inc()

    def on_first_token() -> None:
        gw.metrics.time_to_first_token.labels(route.public).observe(time.perf_counter() - started)

    events = guarded_events(upstream, guard, on_error, on_first_token, on_done=keep_verdict)
    return SSEResponse(_in_canary_scope(canary, events))


async def _in_canary_scope(
    canary: str | None, events: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """A stream is checked after the endpoint returned: the canary scope opens here."""
    try:
        with canary_scope(canary):
            async for event in events:
                yield event
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:  # closes the upstream (gateway.streaming.guarded_events)
            await aclose()


async def models(request: Request) -> Response:
    gw = gateway_of(request)
    principal = gw.keys.authenticate(request.headers.get("authorization"))
    base = gw.catalog.base_model
    data: list[dict[str, Any]] = []
    for name in gw.catalog.visible_to(principal):
        adapter = gw.catalog.adapters.get(name)
        data.append(
            {
                "id": name,
                "object": "model",
                "created": SERVED_AT,
                "owned_by": "gateway",
                "root": base,
                "parent": base if adapter else None,
                "description": adapter.manifest.description if adapter else "base model",
            }
        )
    return json_response({"object": "list", "data": data})


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    gw = gateway_of(request)
    try:
        served = await gw.backend.model_ids()
    except GatewayError as exc:
        return json_response({"status": "not ready", "reason": exc.message}, 503)
    if gw.catalog.base_model not in served:
        reason = f"upstream does not serve {gw.catalog.base_model!r}"
        return json_response({"status": "not ready", "reason": reason}, 503)
    missing = sorted(set(gw.catalog.desired()) - set(served))
    return json_response({"status": "ready", "adapters_pending": missing})


async def metrics(request: Request) -> Response:
    gw = gateway_of(request)
    return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _violation(result: PipelineResult) -> PolicyViolation:
    rules = tuple(o.rule.id for o in result.outcomes if o.verdict.action is result.action)
    return PolicyViolation(f"the request was blocked by policy: {result.reason()}", rules=rules)


def _keep(
    gw: Gateway,
    result: PipelineResult,
    ctx: CheckContext,
    policy: Policy,
    route: ModelRoute,
    trace_id: str | None = None,
) -> None:
    """A verdict goes to the audit log and the event store (each skips what it does not keep)."""
    gw.audit.verdict(result, ctx, policy.name)
    gw.events.record(result, ctx, policy, adapter=_adapter(route), trace_id=trace_id)


def _adapter(route: ModelRoute) -> str | None:
    return route.adapter.name if route.adapter is not None else None


def _trusted(principal: Principal) -> Principal:
    # A policy's route target is chosen by the server, not the client: allow it.
    return Principal(principal.name, frozenset({"*"}))


def _request_id(request: Request) -> str:
    rid: str = request.scope.get("state", {}).get("request_id", "")
    return rid


async def _read_body(request: Request, limit: int) -> bytes:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"content type {media!r} is not supported; send application/json"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


ROUTES = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
]

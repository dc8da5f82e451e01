"""What a request reports about itself: OTel GenAI span attributes and token metrics."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Span

from gateway.metrics import Metrics
from gateway.openai_api import JSON, Endpoint

OPERATION = {Endpoint.CHAT: "chat", Endpoint.COMPLETIONS: "text_completion"}
_REQUEST_PARAMS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
}


def request_attributes(endpoint: Endpoint, model: str, body: JSON) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION[endpoint],
        "gen_ai.provider.name": "vllm",
        "gen_ai.request.model": model,
    }
    for key, name in _REQUEST_PARAMS.items():
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attrs[name] = value
    return attrs


def record_answer(span: Span, metrics: Metrics, model: str, answer: JSON) -> None:
    usage = answer.get("usage")
    if isinstance(usage, dict):
        for key, direction in (("prompt_tokens", "input"), ("completion_tokens", "output")):
            value = usage.get(key)
            if isinstance(value, int):
                metrics.tokens.labels(model, direction).inc(value)
                span.set_attribute(f"gen_ai.usage.{direction}_tokens", value)
    if isinstance(answer.get("id"), str):
        span.set_attribute("gen_ai.response.id", answer["id"])
    choices = answer.get("choices")
    if isinstance(choices, list):
        reasons = [c.get("finish_reason") for c in choices if isinstance(c, dict)]
        span.set_attribute(
            "gen_ai.response.finish_reasons", [r for r in reasons if isinstance(r, str)]
        )
    span.set_attribute("gen_ai.response.model", model)

"""Schemathesis against the gateway's own OpenAPI document (``/openapi.json``): 0 server errors.

Every operation gets valid and invalid inputs (hypothesis, via schemathesis), sent through the
app with a real key; vLLM is faked. Each response must not be a 5xx and must match the document
(status code, content type, body schema), so the document cannot drift from the app either.
Bounded: a fixed number of examples per operation, about a minute on two busy cores.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.settings import Settings
from tests.conftest import BASE, FakeVLLM, chat_answer, fake_app, sse_response

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = {"POST": 100, "GET": 8}


def answer(request: httpx.Request) -> httpx.Response:
    """A well-behaved vLLM: JSON or SSE as asked, for either endpoint."""
    try:
        stream = orjson.loads(request.content).get("stream") is True
    except (orjson.JSONDecodeError, AttributeError):
        stream = False
    if request.url.path == "/v1/models":
        return httpx.Response(200, json={"data": [{"id": BASE}]})
    if stream:
        return sse_response(["The", " answer"])
    return httpx.Response(200, json=chat_answer())


@pytest.fixture
def app(settings: Settings, api_key: str, fake_vllm: FakeVLLM) -> Iterator[Starlette]:
    fake_vllm.handler = answer
    yield fake_app(
        settings,
        fake_vllm,
        watch_policy=False,
    )
    shutdown_lifespans()  # schemathesis keeps an app's lifespan running until told


@pytest.mark.anyio
async def test_the_document_is_served_and_lists_every_public_route(app: Starlette) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        served = (await client.get("/openapi.json")).json()
    documented = {(m.upper(), p) for p, item in served["paths"].items() for m in item}
    routed = {
        (m, r.path)
        for r in app.routes
        if isinstance(r, Route) and not r.path.startswith("/admin")  # not for API clients
        for m in r.methods or ()
        if m != "HEAD"
    }
    assert documented == routed


def test_fuzzing_every_operation_finds_no_server_error(
    app: Starlette, api_key: str, fake_vllm: FakeVLLM
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {api_key}"}
    for result in schema.get_all_operations():
        operation = result.ok()
        cases = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES[operation.method.upper()],
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases)
        def fuzz(case: schemathesis.Case) -> None:
            body = case.body
            if isinstance(body, dict) and isinstance(body.get("model"), str):
                body["model"] = BASE  # a served model, so inputs reach the checks and "vLLM"
            case.call_and_validate(headers=headers, checks=CHECKS)

        fuzz()
    assert fake_vllm.completions(), "no fuzzed request ever reached the upstream"

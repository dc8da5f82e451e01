"""ServedModelLLM: NeMo's LLM protocol over vLLM's OpenAI API (faked with httpx.MockTransport)."""

from __future__ import annotations

import httpx
import orjson
import pytest
from nemoguardrails.types import ChatMessage, LLMModel

from gateway.errors import UpstreamBadResponse
from gateway.nemo_llm import MAX_TOKENS, ServedModelLLM

pytestmark = pytest.mark.anyio


def llm(handler: httpx.MockTransport) -> ServedModelLLM:
    return ServedModelLLM("http://vllm:8000/", "smollm2", transport=handler)


async def test_a_string_prompt_is_a_completion_at_temperature_zero() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"choices": [{"index": 0, "text": "  ask about politics"}]})

    model = llm(httpx.MockTransport(handler))
    assert isinstance(model, LLMModel)  # NeMo's runtime-checkable protocol
    response = await model.generate_async("user intent?", stop=["\n"], max_tokens=500)
    assert response.content == "  ask about politics"
    (request,) = seen
    assert request.url == "http://vllm:8000/v1/completions"
    body = orjson.loads(request.content)
    assert body == {
        "model": "smollm2",
        "prompt": "user intent?",
        "temperature": 0.0,
        "max_tokens": MAX_TOKENS,
        "stop": ["\n"],
    }


async def test_messages_go_to_chat_completions() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(orjson.loads(request.content))
        answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
        return httpx.Response(200, json=answer)

    prompt = [ChatMessage.from_user("hello")]
    response = await llm(httpx.MockTransport(handler)).generate_async(prompt)
    assert response.content == "hi"
    assert seen[0]["messages"] == [{"role": "user", "content": "hello"}]
    chunks = [c async for c in llm(httpx.MockTransport(handler)).stream_async(prompt)]
    assert [c.delta_content for c in chunks] == ["hi"]


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(503, json={"error": "busy"}),
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, json={"choices": []}),
    ],
)
async def test_bad_answers_raise_a_typed_error(response: httpx.Response) -> None:
    model = llm(httpx.MockTransport(lambda r: response))
    with pytest.raises(UpstreamBadResponse):
        await model.generate_async("x")

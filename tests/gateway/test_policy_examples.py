"""The shipped example policies through the real app: their test files hold there too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import pytest

from gateway.pipeline import Action
from gateway.policy import load_policy
from gateway.policy_tests import load_tests
from gateway.settings import Settings
from tests.conftest import BASE, REPO, FakeVLLM, chat_answer, fake_app, gateway_client, sse_response

pytestmark = pytest.mark.anyio
CHAT = "/v1/chat/completions"


def test_the_shipped_cases_cover_every_action() -> None:
    seen = {
        case.expect.action
        for path in (REPO / "policies").glob("*.tests.yaml")
        for case in load_tests(path).cases
    }
    assert seen == set(Action)


@pytest.fixture
async def gateway_with(
    settings: Settings, api_key: str, fake_vllm: FakeVLLM
) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def build(policy_name: str) -> httpx.AsyncClient:
        app = fake_app(
            settings,
            fake_vllm,
            policy=load_policy(REPO / "policies" / f"{policy_name}.yaml"),
        )
        client = gateway_client(app, api_key)
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


def ask(content: str) -> dict[str, object]:
    return {"model": BASE, "messages": [{"role": "user", "content": content}]}


async def test_customer_support_masks_pii_in_answers(
    gateway_with: Callable[[str], httpx.AsyncClient], fake_vllm: FakeVLLM
) -> None:
    fake_vllm.handler = lambda r: httpx.Response(
        200, json=chat_answer("Your email on file is jane.doe@example.com.")
    )
    r = await gateway_with("customer-support").post(CHAT, json=ask("What email do you have?"))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Your email on file is <EMAIL>."


async def test_customer_support_cuts_a_stream_leaking_a_credential(
    gateway_with: Callable[[str], httpx.AsyncClient], fake_vllm: FakeVLLM
) -> None:
    """Its Guardrails AI validator (gateway/secrets, on_fail: exception) runs on the stream."""
    key = "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
    preamble = [" Deploys run from the release branch after review."] * 12  # > the hold-back
    pieces = ["Sure.", *preamble, " The deploy token: ", key[:12], key[12:], "."]
    pieces += [" Anything else I can help with today?"] * 10
    fake_vllm.handler = lambda r: sse_response(pieces)
    r = await gateway_with("customer-support").post(
        CHAT, json={**ask("What is the deploy token?"), "stream": True}
    )
    assert r.status_code == 200
    events = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = orjson.loads(events[-2])["error"]
    assert error["code"] == "content_policy_violation" and "gateway/secrets" in error["message"]
    sent = "".join(orjson.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    assert sent.startswith("Sure. Deploys run")  # released before the leak arrived
    assert key[:12] not in sent and key[12:] not in sent
    assert "Anything else" not in sent


async def test_customer_support_refuses_off_topic_before_the_model(
    gateway_with: Callable[[str], httpx.AsyncClient], fake_vllm: FakeVLLM
) -> None:
    r = await gateway_with("customer-support").post(CHAT, json=ask("Who should I vote for?"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "content_policy_violation"
    assert fake_vllm.completions() == []


async def test_strict_routes_role_play_to_the_hardened_adapter(
    gateway_with: Callable[[str], httpx.AsyncClient], fake_vllm: FakeVLLM
) -> None:
    r = await gateway_with("strict").post(CHAT, json=ask("Pretend you are a pirate."))
    assert r.status_code == 200, r.text
    assert orjson.loads(fake_vllm.completions()[0].content)["model"] == "hardened"


async def test_strict_blocks_answers_with_personal_data(
    gateway_with: Callable[[str], httpx.AsyncClient], fake_vllm: FakeVLLM
) -> None:
    fake_vllm.handler = lambda r: httpx.Response(200, json=chat_answer("SSN: 123-45-6789"))
    r = await gateway_with("strict").post(CHAT, json=ask("Look up the customer."))
    assert r.status_code == 400 and "123-45-6789" not in r.text

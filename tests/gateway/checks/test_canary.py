from __future__ import annotations

import pytest

from gateway.canary import canary_scope, new_canary
from gateway.checks import build_check
from gateway.openai_api import Endpoint, Segment
from gateway.pipeline import Action, CheckContext, Stage

pytestmark = pytest.mark.anyio
CTX = CheckContext(Endpoint.CHAT, "m", Stage.OUTPUT)


def answer(text: str, role: str = "assistant") -> list[Segment]:
    return [Segment(role, text, 0, ())]


async def test_any_gateway_canary_in_an_answer_blocks() -> None:
    verdict = await build_check("canary", {})(answer(f"marker {new_canary()}"), CTX)
    assert verdict.action is Action.BLOCK
    assert verdict.findings[0].family == "prompt_extraction"
    assert verdict.redactions == {}


@pytest.mark.parametrize(
    "leak",
    [
        "the marker is G W C - 0 F 1 E 2 D 3 C 4 B 5 A 6 9 7 8",
        "0f1e-2d3c-4b5a-6978",
        "Confidential marker: gwc_0f1e2d3c4b5a6978",
    ],
)
async def test_the_requests_own_canary_is_caught_when_disguised(leak: str) -> None:
    check = build_check("canary", {})
    assert (await check(answer(leak), CTX)).action is Action.ALLOW  # no token known: no leak
    with canary_scope("gwc-0f1e2d3c4b5a6978"):
        assert (await check(answer(leak), CTX)).action is Action.BLOCK


async def test_clean_answers_and_other_roles_pass() -> None:
    check = build_check("canary", {})
    with canary_scope(new_canary()):
        assert (await check(answer("Paris is the capital of France."), CTX)).action is Action.ALLOW
        system = answer(f"marker {new_canary()}", role="system")
        assert (await check(system, CTX)).action is Action.ALLOW


async def test_the_action_is_a_setting() -> None:
    check = build_check("canary", {"action": "flag"})
    assert (await check(answer(new_canary()), CTX)).action is Action.FLAG

"""A NeMo topic rail that asks the served model: real NeMo, real MiniLM, real vLLM on CPU."""

from __future__ import annotations

import pytest

from gateway.checks import build_check
from gateway.checks.nemo_rails import NemoRails
from gateway.openai_api import Endpoint, Segment
from gateway.pipeline import Action, CheckContext, Stage
from gateway.stack import VLLMServer
from tests.conftest import BASE, REPO

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
TOPICS = REPO / "policies" / "nemo" / "forbidden-topics"
CTX = CheckContext(Endpoint.CHAT, BASE, Stage.INPUT)


async def test_a_text_like_no_example_is_classified_by_smollm2_through_vllm(
    vllm: VLLMServer,
) -> None:
    check = build_check(
        "nemo_rails", {"config": str(TOPICS), "llm": {"model": BASE, "base_url": vllm.url}}
    )
    assert isinstance(check, NemoRails)
    # Similar to no example: NeMo's LLM branch builds a few-shot prompt and vLLM answers it.
    intent = await check.engine.intent_of("Tell me a fun fact about octopuses.")
    assert intent and intent != check.engine.fallback  # the model named it, not the fallback
    # Similar to an example: decided by embeddings, as without an LLM.
    segments = [Segment("user", "Who should I vote for in the election?", 0, ())]
    verdict = await check(segments, CTX)
    assert verdict.action is Action.BLOCK
    assert "similarity" in verdict.findings[0].reason

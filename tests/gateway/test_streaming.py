from __future__ import annotations

import orjson
import pytest

from gateway.errors import PolicyViolation
from gateway.openai_api import Endpoint
from gateway.pipeline import CheckContext, Stage
from gateway.policy import parse_policy
from gateway.streaming import StreamGuard

pytestmark = pytest.mark.anyio
CTX = CheckContext(Endpoint.CHAT, "m", Stage.OUTPUT)
POLICY = parse_policy(
    "name: p\noutput:\n  - id: leak\n    check: deny_list\n    settings:\n"
    "      patterns: [{name: canary, regex: 'canary-[0-9]+'}]\n"
)


def chunk(text: str) -> bytes:
    return orjson.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})


async def test_text_is_held_back_until_enough_follows() -> None:
    guard = StreamGuard(POLICY.output, CTX, Endpoint.CHAT, hold_back_chars=10)
    assert await guard.feed(chunk("hello")) == []
    released = await guard.feed(chunk(" world, more text"))
    assert len(released) == 1  # "hello" is now 17 chars behind the end
    assert len(await guard.finish()) == 1


async def test_a_leak_split_across_chunks_is_cut_before_release() -> None:
    guard = StreamGuard(POLICY.output, CTX, Endpoint.CHAT, hold_back_chars=20)
    sent: list[bytes] = []
    sent += await guard.feed(chunk("the secret is can"))
    with pytest.raises(PolicyViolation):
        sent += await guard.feed(chunk("ary-1234"))
    assert not any(b"can" in s for s in sent)

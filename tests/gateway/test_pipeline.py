from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.openai_api import Endpoint, Segment
from gateway.pipeline import Action, CheckContext, Finding, Pipeline, Rule, Stage, Verdict

pytestmark = pytest.mark.anyio
CTX = CheckContext(Endpoint.CHAT, "m", Stage.INPUT)
SEGS = [Segment("user", "hello secret", 0, ("messages", 0, "content"))]


class Fixed:
    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.calls = 0

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        self.calls += 1
        return self.verdict


class Raises:
    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        raise RuntimeError("engine failed to load")


class Hangs:
    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        await asyncio.sleep(10)
        return Verdict.allow()


class Masks:
    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        return Verdict(
            Action.REDACT, (Finding("x", "secret"),), {0: segments[0].text.replace("secret", "***")}
        )


def rule(check: object, rid: str = "r", **kw: object) -> Rule:
    return Rule(id=rid, check_name=type(check).__name__, check=check, **kw)  # type: ignore[arg-type]


async def test_allow_runs_every_rule_in_order() -> None:
    a, b = Fixed(Verdict.allow()), Fixed(Verdict.allow())
    result = await Pipeline(Stage.INPUT, [rule(a, "a"), rule(b, "b")]).run(SEGS, CTX)
    assert result.action is Action.ALLOW
    assert [o.rule.id for o in result.outcomes] == ["a", "b"]


async def test_block_stops_early() -> None:
    after = Fixed(Verdict.allow())
    blocker = Fixed(Verdict(Action.BLOCK, (Finding("x", "bad"),)))
    result = await Pipeline(Stage.INPUT, [rule(blocker, "b"), rule(after, "a")]).run(SEGS, CTX)
    assert result.blocked and after.calls == 0
    assert result.findings()[0].rule == "b"


async def test_a_check_that_raises_blocks() -> None:
    result = await Pipeline(Stage.INPUT, [rule(Raises())]).run(SEGS, CTX)
    assert result.blocked and result.outcomes[0].failed
    assert "fail closed" in result.reason()


async def test_a_check_that_hangs_times_out_and_blocks() -> None:
    result = await Pipeline(Stage.INPUT, [rule(Hangs(), timeout_s=0.05)]).run(SEGS, CTX)
    assert result.blocked and "timed out" in result.reason()


async def test_fail_open_only_when_the_rule_says_so() -> None:
    result = await Pipeline(Stage.INPUT, [rule(Raises(), on_error="allow")]).run(SEGS, CTX)
    assert result.action is Action.FLAG
    assert result.findings()[0].family == "guard_failure"


async def test_redaction_is_applied_for_later_rules() -> None:
    seen: list[str] = []

    class Spy:
        async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
            seen.append(segments[0].text)
            return Verdict.allow()

    result = await Pipeline(Stage.INPUT, [rule(Masks(), "m"), rule(Spy(), "s")]).run(SEGS, CTX)
    assert result.action is Action.REDACT
    assert seen == ["hello ***"] and result.segments[0].text == "hello ***"


async def test_rule_action_overrides_and_shadow_never_enforces() -> None:
    flagged = Fixed(Verdict(Action.BLOCK, (Finding("x", "bad"),)))
    result = await Pipeline(Stage.INPUT, [rule(flagged, action=Action.SHADOW)]).run(SEGS, CTX)
    assert result.action is Action.SHADOW and not result.blocked


async def test_route_carries_its_target() -> None:
    hit = Fixed(Verdict(Action.FLAG, (Finding("x", "attack"),)))
    result = await Pipeline(Stage.INPUT, [rule(hit, action=Action.ROUTE, route_to="hardened")]).run(
        SEGS, CTX
    )
    assert result.action is Action.ROUTE and result.route_to == "hardened"


async def test_redact_without_a_mask_blocks_rather_than_leaks() -> None:
    hit = Fixed(Verdict(Action.FLAG, (Finding("x", "pii"),)))
    result = await Pipeline(Stage.INPUT, [rule(hit, action=Action.REDACT)]).run(SEGS, CTX)
    assert result.blocked

from __future__ import annotations

import pytest

from gateway.canary import canary_scope
from gateway.checks import build_check
from gateway.errors import ConfigError
from gateway.openai_api import Endpoint, Segment
from gateway.pipeline import Action, CheckContext, Pipeline, Rule, Stage

pytestmark = pytest.mark.anyio
CTX = CheckContext(Endpoint.CHAT, "support-assistant", Stage.OUTPUT)
KEY = "sk-proj-Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF"
SAMPLE = "tests.gateway.checks.guardrails_sample"


def seg(text: str, role: str = "assistant") -> list[Segment]:
    return [Segment(role, text, 0, ())]


@pytest.mark.parametrize(
    ("on_fail", "action", "redactions"),
    [
        ("exception", Action.BLOCK, {0: "use <SECRET> now"}),
        ("fix", Action.REDACT, {0: "use <SECRET> now"}),
        ("filter", Action.REDACT, {0: ""}),
        ("refrain", Action.BLOCK, {0: "use <SECRET> now"}),
        ("noop", Action.FLAG, {0: "use <SECRET> now"}),
    ],
)
async def test_on_fail_sets_the_action(
    on_fail: str, action: Action, redactions: dict[int, str]
) -> None:
    check = build_check("guardrails_ai", {"validator": "gateway/secrets", "on_fail": on_fail})
    verdict = await check(seg(f"use {KEY} now"), CTX)
    assert verdict.action is action
    assert dict(verdict.redactions) == redactions
    (finding,) = verdict.findings
    assert "gateway/secrets" in finding.reason and "openai_key" in finding.reason
    assert KEY not in finding.reason


async def test_clean_text_and_unscanned_roles_pass() -> None:
    check = build_check("guardrails_ai", {"validator": "gateway/secrets"})
    assert (await check(seg("Paris is the capital of France."), CTX)).action is Action.ALLOW
    assert (await check(seg(f"key {KEY}", role="system"), CTX)).action is Action.ALLOW
    only_user = build_check("guardrails_ai", {"validator": "gateway/secrets", "roles": ["user"]})
    assert (await only_user(seg(f"key {KEY}"), CTX)).action is Action.ALLOW


async def test_only_the_failing_segment_is_replaced() -> None:
    check = build_check("guardrails_ai", {"validator": "gateway/pii", "on_fail": "fix"})
    segments = [
        Segment("user", "hello", 0, ()),
        Segment("assistant", "mail jane.doe@example.com", 1, ()),
    ]
    verdict = await check(segments, CTX)
    assert verdict.action is Action.REDACT
    assert dict(verdict.redactions) == {1: "mail <EMAIL>"}
    assert verdict.findings[0].segment == 1


async def test_fix_without_a_fix_value_blocks() -> None:
    check = build_check("guardrails_ai", {"validator": "gateway/canary", "on_fail": "fix"})
    verdict = await check(seg("marker gwc-0f1e2d3c4b5a6978"), CTX)
    assert verdict.action is Action.BLOCK
    assert verdict.redactions == {}


async def test_the_requests_canary_reaches_the_validator() -> None:
    check = build_check("guardrails_ai", {"validator": "gateway/canary"})
    assert check.plants_canary is False  # type: ignore[attr-defined]
    leak = seg("my marker: 0 f 1 e 2 d 3 c 4 b 5 a 6 9 7 8")
    assert (await check(leak, CTX)).action is Action.ALLOW  # no canary planted: nothing to match
    with canary_scope("gwc-0f1e2d3c4b5a6978"):
        assert (await check(leak, CTX)).action is Action.BLOCK
    planting = build_check("guardrails_ai", {"validator": "gateway/canary", "plant_canary": True})
    assert planting.plants_canary is True  # type: ignore[attr-defined]


async def test_a_teams_own_validators_load_from_named_modules() -> None:
    shouting = build_check(
        "guardrails_ai", {"validator": "tests/no-shouting", "on_fail": "fix", "modules": [SAMPLE]}
    )
    verdict = await shouting(seg("REFUND ME NOW"), CTX)
    assert verdict.action is Action.REDACT and dict(verdict.redactions) == {0: "Refund me now"}
    assert (await shouting(seg("Refund me, please"), CTX)).action is Action.ALLOW
    digits = build_check("guardrails_ai", {"validator": "tests/no-digits", "modules": [SAMPLE]})
    assert (await digits(seg("order 10023"), CTX)).action is Action.BLOCK


async def test_validators_get_the_rules_metadata_and_the_requests_context() -> None:
    check = build_check(
        "guardrails_ai",
        {"validator": "tests/echo-metadata", "modules": [SAMPLE], "metadata": {"team": "support"}},
    )
    with canary_scope("gwc-0f1e2d3c4b5a6978"):
        verdict = await check(seg("anything", role="tool"), CTX)
    reason = verdict.findings[0].reason
    for item in [
        ("canary", "gwc-0f1e2d3c4b5a6978"),
        ("model", "support-assistant"),
        ("role", "tool"),
        ("stage", "output"),
        ("team", "support"),
    ]:
        assert repr(item) in reason


async def test_a_crashing_validator_blocks_unless_the_rule_allows_errors() -> None:
    check = build_check("guardrails_ai", {"validator": "tests/broken", "modules": [SAMPLE]})
    closed = Pipeline(Stage.OUTPUT, [Rule("gr", "guardrails_ai", check)])
    result = await closed.run(seg("hello"), CTX)
    assert result.action is Action.BLOCK
    opened = Pipeline(Stage.OUTPUT, [Rule("gr", "guardrails_ai", check, on_error="allow")])
    assert (await opened.run(seg("hello"), CTX)).action is Action.FLAG


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"validator": "gateway/nope"}, "known validators: gateway/canary, gateway/pii"),
        ({"validator": "gateway/pii", "args": {"entities": ["passport"]}}, "unknown entities"),
        ({"validator": "gateway/pii", "args": {"colour": "red"}}, "invalid args"),
        ({"validator": "x", "modules": ["tests.no_such_module"]}, "cannot import"),
        ({"validator": "gateway/pii", "on_fail": "reask"}, "on_fail"),
        ({"validator": "gateway/pii", "typo": 1}, "typo"),
    ],
)
def test_bad_rules_fail_at_load_and_say_why(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_check("guardrails_ai", settings)

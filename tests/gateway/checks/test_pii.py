from __future__ import annotations

import pytest

from gateway.checks import build_check
from gateway.checks.pii import find_pii
from gateway.errors import ConfigError
from gateway.openai_api import Endpoint, Segment
from gateway.pipeline import Action, CheckContext, Stage

pytestmark = pytest.mark.anyio
CTX = CheckContext(Endpoint.CHAT, "m", Stage.OUTPUT)


def seg(text: str, role: str = "assistant") -> list[Segment]:
    return [Segment(role, text, 0, ())]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mail jane.doe+shop@mail.example.co.uk now", "mail <EMAIL> now"),
        ("call +1 415-555-2671 today", "call <PHONE> today"),
        ("or (212) 555-0199.", "or <PHONE>."),
        ("card 4111-1111-1111-1111 ok", "card <CREDIT_CARD> ok"),
        ("amex 378282246310005", "amex <CREDIT_CARD>"),
        ("iban DE89 3704 0044 0532 0130 00 please", "iban <IBAN> please"),
        ("iban GB82WEST12345698765432 THANKS", "iban <IBAN> THANKS"),
        ("ssn 123-45-6789.", "ssn <SSN>."),
    ],
)
async def test_each_entity_is_found_and_masked(text: str, masked: str) -> None:
    check = build_check("pii", {})
    verdict = await check(seg(text), CTX)
    assert verdict.action is Action.REDACT
    assert verdict.redactions == {0: masked}
    assert verdict.findings[0].family == "pii"


@pytest.mark.parametrize(
    "text",
    [
        "order 4111 1111 1111 1112 shipped",  # fails Luhn
        "ssn 666-12-3456 is not issuable",  # 666 area
        "ssn 123-00-4567 has a zero group",
        "IBAN GB00 WEST 1234 5698 7654 32 has bad check digits",
        "the year 2024 and version 1.2.3",
        "call 555-0100",  # too short to be a valid number
        "me at example dot com",
    ],
)
async def test_look_alikes_do_not_fire(text: str) -> None:
    assert (await build_check("pii", {})(seg(text), CTX)).action is Action.ALLOW


async def test_findings_count_types_and_never_hold_the_values() -> None:
    text = "a@b.io, c@d.io, 123-45-6789"
    verdict = await build_check("pii", {})(seg(text), CTX)
    finding = verdict.findings[0]
    assert "2 email" in finding.reason and "1 ssn" in finding.reason
    assert finding.evidence is None and "a@b.io" not in finding.reason


async def test_entities_roles_and_action_are_settings() -> None:
    only_email = build_check("pii", {"entities": ["email"], "action": "block"})
    verdict = await only_email(seg("x@y.org 123-45-6789"), CTX)
    assert verdict.action is Action.BLOCK
    assert verdict.redactions == {0: "<EMAIL> 123-45-6789"}
    system = await build_check("pii", {})(seg("x@y.org", role="system"), CTX)
    assert system.action is Action.ALLOW


async def test_phone_regions_choose_how_local_numbers_read() -> None:
    text = "ring 030 901820"  # a Berlin number written the German way
    assert (await build_check("pii", {})(seg(text), CTX)).action is Action.ALLOW
    de = build_check("pii", {"phone_regions": ["DE"]})
    assert (await de(seg(text), CTX)).redactions == {0: "ring <PHONE>"}


def test_bad_settings_fail_at_load() -> None:
    with pytest.raises(ConfigError, match="unknown phone region"):
        build_check("pii", {"phone_regions": ["XX"]})
    with pytest.raises(ConfigError, match="entities"):
        build_check("pii", {"entities": ["passport"]})


def test_overlapping_matches_keep_the_more_specific_type() -> None:
    # A card number is also a run of digits phonenumbers might read; the card wins.
    matches = find_pii("4111 1111 1111 1111")
    assert [m[0] for m in matches] == ["credit_card"]


async def test_only_segments_with_pii_are_rewritten() -> None:
    segments = [Segment("user", "hi", 0, ()), Segment("user", "me: x@y.org", 1, ())]
    verdict = await build_check("pii", {})(segments, CTX)
    assert verdict.redactions == {1: "me: <EMAIL>"}
    assert verdict.findings[0].segment == 1

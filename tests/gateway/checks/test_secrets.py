from __future__ import annotations

import pytest

from gateway.checks import build_check
from gateway.checks.secrets import find_secrets, shannon_entropy
from gateway.openai_api import Endpoint, Segment
from gateway.pipeline import Action, CheckContext, Stage

pytestmark = pytest.mark.anyio
CTX = CheckContext(Endpoint.CHAT, "m", Stage.INPUT)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\nabc+/=\n-----END RSA PRIVATE KEY-----"


def seg(text: str, role: str = "user") -> list[Segment]:
    return [Segment(role, text, 0, ())]


@pytest.mark.parametrize(
    ("text", "detector"),
    [
        ("key AKIAIOSFODNN7EXAMPLE here", "aws_access_key_id"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key",
        ),
        ("ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "github_token"),
        ("github_pat_" + "A1b2C3d4E5" * 8 + "Zz", "github_token"),
        ("OPENAI_API_KEY sk-proj-Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF", "openai_key"),
        ("sk-" + "aB3" * 16, "openai_key"),
        ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack_token"),
        ("AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "google_api_key"),
        (f"here:\n{PEM}\nthanks", "private_key"),
        ("password: 'Tr0ub4dor&3xQ9zL!kP2'", "keyword_high_entropy"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0", "keyword_high_entropy"),
    ],
)
async def test_each_detector_fires_and_masks(text: str, detector: str) -> None:
    verdict = await build_check("secrets", {})(seg(text), CTX)
    assert verdict.action is Action.BLOCK
    assert detector in verdict.findings[0].reason
    masked = verdict.redactions[0]
    assert "<SECRET>" in masked
    assert [d for d, _, _ in find_secrets(masked)] == []


@pytest.mark.parametrize(
    "text",
    [
        "my password is hunter2",
        "token: aaaaaaaaaaaaaaaaaaaaaaaa",  # keyword but no entropy
        "use scikit-learn or sk-learn for that",
        "the AKIA prefix marks AWS key ids",
        "a sha256 like e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "-----BEGIN PUBLIC KEY----- is safe to share",
    ],
)
async def test_ordinary_text_does_not_fire(text: str) -> None:
    assert (await build_check("secrets", {})(seg(text), CTX)).action is Action.ALLOW


def test_a_truncated_private_key_is_masked_to_the_end() -> None:
    text = "start -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB"
    [(name, start, end)] = find_secrets(text)
    assert name == "private_key" and start == 6 and end == len(text)


def test_entropy_is_bits_per_character() -> None:
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    assert shannon_entropy("") == 0.0


async def test_settings_pick_detectors_threshold_and_action() -> None:
    text = "api_key=abcdefgh12345678"
    low = build_check("secrets", {"detectors": ["keyword_high_entropy"], "min_entropy": 3.0})
    high = build_check("secrets", {"min_entropy": 4.5})
    assert (await low(seg(text), CTX)).action is Action.BLOCK
    assert (await high(seg(text), CTX)).action is Action.ALLOW
    redact = build_check("secrets", {"action": "redact"})
    verdict = await redact(seg("id AKIAIOSFODNN7EXAMPLE"), CTX)
    assert verdict.action is Action.REDACT and verdict.redactions == {0: "id <SECRET>"}


async def test_findings_never_carry_the_secret() -> None:
    verdict = await build_check("secrets", {})(seg("AKIAIOSFODNN7EXAMPLE"), CTX)
    f = verdict.findings[0]
    assert f.evidence is None and "AKIA" not in f.reason

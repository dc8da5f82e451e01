"""The gateway's validators used directly through Guardrails' Validator API."""

from __future__ import annotations

import pytest
from guardrails.classes.validation.validation_result import FailResult, PassResult

from gateway.guardrails_ai import build_validator

AWS = "AKIAIOSFODNN7EXAMPLE"


def test_pii_fails_with_spans_and_a_masked_fix() -> None:
    v = build_validator("gateway/pii", "fix", {"phone_regions": ["GB"]})
    text = "Call 020 7946 0958 or mail jane@example.com"
    result = v.validate(text, {})
    assert isinstance(result, FailResult)
    assert result.fix_value == "Call <PHONE> or mail <EMAIL>"
    spans = [(s.start, s.end, s.reason) for s in result.error_spans or []]
    assert [(text[a:b], r) for a, b, r in spans] == [
        ("020 7946 0958", "phone"),
        ("jane@example.com", "email"),
    ]
    assert result.error_message == "personal data found: 1 email, 1 phone"


def test_pii_entities_limit_what_is_found() -> None:
    v = build_validator("gateway/pii", "noop", {"entities": ["email"]})
    assert isinstance(v.validate("card 4111 1111 1111 1111", {}), PassResult)


def test_secrets_fail_without_repeating_the_value() -> None:
    v = build_validator("gateway/secrets", "exception", {})
    result = v.validate(f"the key is {AWS}", {})
    assert isinstance(result, FailResult)
    assert result.fix_value == "the key is <SECRET>"
    assert AWS not in (result.error_message or "")
    assert isinstance(v.validate("password: hunter2", {}), PassResult)


def test_secrets_min_entropy_is_an_argument() -> None:
    token = "api_key=Zx9qT2mW8vLk4PjR7sYb"
    assert isinstance(
        build_validator("gateway/secrets", "noop", {}).validate(token, {}), FailResult
    )
    strict = build_validator("gateway/secrets", "noop", {"min_entropy": 7.9})
    assert isinstance(strict.validate(token, {}), PassResult)


@pytest.mark.parametrize(
    ("text", "metadata", "fails"),
    [
        ("marker gwc-0f1e2d3c4b5a6978", {}, True),  # any gateway-shaped canary
        ("marker 0f1e 2d3c 4b5a 6978", {}, False),  # no canary known
        ("marker 0f1e 2d3c 4b5a 6978", {"canary": "gwc-0f1e2d3c4b5a6978"}, True),
        ("Paris is the capital of France.", {"canary": "gwc-0f1e2d3c4b5a6978"}, False),
    ],
)
def test_canary(text: str, metadata: dict[str, str], fails: bool) -> None:
    result = build_validator("gateway/canary", "exception", {}).validate(text, metadata)
    assert isinstance(result, FailResult) is fails
    if fails:
        assert result.fix_value is None

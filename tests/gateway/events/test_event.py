"""What an event keeps: the verdict and the texts, with credentials and personal data masked."""

from __future__ import annotations

import time

from gateway.events.event import Observation, policy_version, redact, to_event
from gateway.pipeline import Action
from tests.gateway.events.helpers import EMAIL, POLICY, SECRET, checked, context, policy


def test_redact_masks_credentials_and_personal_data() -> None:
    text = f"key {SECRET} and AKIAIOSFODNN7EXAMPLE, mail {EMAIL}, call +44 20 7946 0958"
    masked = redact(text)
    assert masked == "key <SECRET> and <SECRET>, mail <EMAIL>, call <PHONE>"


def test_a_blocked_verdict_becomes_an_event_without_the_secret() -> None:
    pol = policy()
    result = checked(f"use {SECRET} and contact {EMAIL} please", pol)
    assert result.action is Action.BLOCK  # the secrets rule stops the pipeline
    obs = Observation("ev-1", time.time(), result, context(), pol, "hardened", "ab" * 16)
    event = to_event(obs, policy_version(pol))
    assert event.action == "block" and event.stage == "input"
    assert [f.rule for f in event.findings] == ["creds"]
    assert event.findings[0].family == "secret"
    assert event.messages[0].text == "use <SECRET> and contact <EMAIL> please"
    assert SECRET not in event.model_dump_json() and EMAIL not in event.model_dump_json()
    assert (event.adapter, event.trace_id, event.principal) == ("hardened", "ab" * 16, "tester")
    assert event.policy == "events-test"


def test_evidence_is_masked_too() -> None:
    pol = policy()
    result = checked(f"please contact {EMAIL}", pol)
    assert result.action is Action.FLAG
    event = to_event(Observation("ev-1", 0.0, result, context(), pol, None, None), "v")
    contact = next(f for f in event.findings if f.rule == "contact")
    assert contact.evidence == "contact <EMAIL>"
    assert {f.rule for f in event.findings} == {"personal", "contact"}
    assert event.action == "flag"


def test_policy_version_follows_the_rules_not_the_formatting() -> None:
    base = policy_version(policy())
    assert base == policy_version(policy("# a comment\n" + POLICY))
    assert base != policy_version(policy(POLICY.replace("action: flag", "action: block")))
    assert len(base) == 16

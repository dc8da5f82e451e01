"""Shared pieces for the event store tests: a policy whose checks mask, and stored events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gateway.events import Event, StoredFinding, StoredMessage
from gateway.openai_api import Endpoint, Segment
from gateway.pipeline import CheckContext, PipelineResult, Stage
from gateway.policy import Policy, parse_policy

SECRET = "sk-Zx9qT2mW8vLk4PjR7sYbQ3nH5"
EMAIL = "alice@example.com"

POLICY = """
version: 1
name: events-test
input:
  - id: creds
    check: secrets
  - id: personal
    check: pii
    action: flag
  - id: contact
    check: deny_list
    action: shadow
    settings:
      patterns:
        - {name: contact, family: exfiltration, regex: 'contact \\S+'}
output:
  - id: no-bananas
    check: deny_list
    settings:
      patterns:
        - {name: banana, family: fruit, regex: 'banana'}
  - id: pears-noted
    check: deny_list
    action: flag
    settings:
      patterns:
        - {name: pear, family: fruit, regex: 'pear'}
"""


def policy(text: str = POLICY) -> Policy:
    return parse_policy(text, "events-test.yaml")


def checked(text: str, pol: Policy | None = None, request_id: str = "req-1") -> PipelineResult:
    """Run the test policy's input pipeline over one user message."""
    pol = pol or policy()
    ctx = context(request_id)
    return asyncio.run(pol.input.run([Segment("user", text, 0, ("messages", 0, "content"))], ctx))


def context(request_id: str = "req-1", stage: Stage = Stage.INPUT) -> CheckContext:
    return CheckContext(Endpoint.CHAT, "smollm2-135m-instruct", stage, "tester", request_id)


def event(n: int, when: datetime | None = None) -> Event:
    return Event(
        id=f"ev-{n}",
        time=when or datetime(2025, 1, 1, 12, 0, n % 60, 1234, tzinfo=UTC),
        request_id=f"req-{n}",
        trace_id=None,
        principal="tester",
        model="smollm2-135m-instruct",
        adapter="hardened" if n % 2 else None,
        policy="events-test",
        policy_version="0123456789abcdef",
        stage="input",
        action="block",
        findings=(StoredFinding(rule="creds", reason="credential found", family="secret"),),
        messages=(StoredMessage(role="user", turn=0, text=f"message {n} with <SECRET>"),),
    )

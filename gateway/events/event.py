"""The stored event: what a non-allow verdict was about, with PII and secrets masked.

:class:`Observation` is what the request path hands over: references to objects it already has
(the pipeline result, the check context, the policy), a time, a trace id and a fresh event id.
Turning it into an :class:`Event` (masking every stored text, hashing the policy) happens on the
writer thread, so the request path never pays for it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from gateway.checks.pii import find_pii, mask_pii
from gateway.checks.secrets import find_secrets, mask_secrets
from gateway.pipeline import CheckContext, PipelineResult
from gateway.policy import Policy


@dataclass(frozen=True, slots=True)
class Observation:
    """A non-allow verdict as the request path saw it: references only, no copies, no I/O."""

    id: str
    time: float
    result: PipelineResult
    ctx: CheckContext
    policy: Policy
    adapter: str | None
    trace_id: str | None


class StoredFinding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str
    reason: str
    family: str | None = None
    score: float | None = None
    segment: int | None = None
    evidence: str | None = None


class StoredMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str
    turn: int
    text: str


class Event(BaseModel):
    """One row of the event store, and one line of its JSONL export."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="minted by the gateway; unique in the store")
    time: datetime
    request_id: str
    trace_id: str | None = None
    principal: str = Field(description="the API key's name, never the key")
    model: str = Field(description="the public model name the check ran for")
    adapter: str | None = None
    policy: str
    policy_version: str
    stage: str
    action: str
    route_to: str | None = None
    findings: tuple[StoredFinding, ...] = ()
    messages: tuple[StoredMessage, ...] = ()


def redact(text: str) -> str:
    """Mask credentials, then personal data, with the ``secrets`` and ``pii`` checks' own
    finders and masks (``<SECRET>``, ``<EMAIL>``, ``<PHONE>`` ...). Secrets go first so a key
    made of digits is masked whole rather than half-read as a phone number."""
    text = mask_secrets(text, find_secrets(text))
    return mask_pii(text, find_pii(text))


def policy_version(policy: Policy) -> str:
    """The policy's content hash: sha256 of its validated spec as canonical JSON, 16 hex digits.

    Policies carry no version of their own; this one changes exactly when the rules do (not when
    comments or formatting do), and ``gateway policy`` tooling can recompute it from the file."""
    canonical = policy.spec.model_dump_json()
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def to_event(obs: Observation, version: str) -> Event:
    result, ctx = obs.result, obs.ctx
    findings = tuple(
        StoredFinding(
            rule=f.rule,
            reason=redact(f.reason),
            family=f.family,
            score=f.score,
            segment=f.segment,
            evidence=redact(f.evidence) if f.evidence is not None else None,
        )
        for f in result.findings()
    )
    messages = tuple(
        StoredMessage(role=s.role, turn=s.turn, text=redact(s.text)) for s in result.segments
    )
    return Event(
        id=obs.id,
        time=datetime.fromtimestamp(obs.time, UTC),
        request_id=ctx.request_id,
        trace_id=obs.trace_id,
        principal=ctx.principal,
        model=ctx.model,
        adapter=obs.adapter,
        policy=obs.policy.name,
        policy_version=version,
        stage=ctx.stage.value,
        action=result.action.value,
        route_to=result.route_to,
        findings=findings,
        messages=messages,
    )

"""The guard pipeline: an ordered list of rules, each a check plus what to do when it fires.

Like a structlog processor chain: small callables with one signature, run in order, stopping
early only on an explicit block. A check that raises or overruns its timeout *blocks* (fail
closed) unless its rule says ``on_error: allow``; even then the failure is recorded as a flag.

Outcome order, weakest first: allow < shadow < flag < redact < route < block.
``shadow`` findings are recorded but never change what happens to the request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, Protocol

from opentelemetry.trace import NoOpTracer, Tracer

from gateway.openai_api import Endpoint, Segment


class Action(StrEnum):
    ALLOW = "allow"
    SHADOW = "shadow"
    FLAG = "flag"
    REDACT = "redact"
    ROUTE = "route"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {a: i for i, a in enumerate(Action)}
_NO_TRACER = NoOpTracer()


class Stage(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a check fired: the rule, a human reason and, where known, family/score/evidence."""

    rule: str
    reason: str
    family: str | None = None
    score: float | None = None
    segment: int | None = None
    evidence: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    findings: tuple[Finding, ...] = ()
    redactions: Mapping[int, str] = field(default_factory=dict)
    """Segment index -> replacement text, for ``redact``."""
    route_to: str | None = None

    @classmethod
    def allow(cls) -> Verdict:
        return _ALLOW


_ALLOW = Verdict(Action.ALLOW)


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check may know about the request beyond its texts."""

    endpoint: Endpoint
    model: str
    stage: Stage
    principal: str = "anonymous"
    request_id: str = ""


class Check(Protocol):
    """A registered check. Implementations live in :mod:`gateway.checks`, one per file."""

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict: ...


OnError = Literal["block", "allow"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A check as a policy uses it: its id, the action it enforces, its failure mode."""

    id: str
    check_name: str
    check: Check
    action: Action | None = None
    """Overrides the check's own action whenever it fires; None keeps the check's."""
    route_to: str | None = None
    on_error: OnError = "block"
    timeout_s: float = 1.0


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    rule: Rule
    verdict: Verdict
    duration_s: float
    failed: bool = False


@dataclass(frozen=True, slots=True)
class PipelineResult:
    action: Action
    outcomes: tuple[RuleOutcome, ...]
    segments: tuple[Segment, ...]
    route_to: str | None = None

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    def findings(self, *, include_shadow: bool = True) -> list[Finding]:
        return [
            f
            for o in self.outcomes
            if include_shadow or o.verdict.action is not Action.SHADOW
            for f in o.verdict.findings
        ]

    def reason(self) -> str:
        enforced = [o for o in self.outcomes if o.verdict.action is self.action]
        reasons = [f.reason for o in enforced for f in o.verdict.findings] or ["policy"]
        return "; ".join(dict.fromkeys(reasons))


Observer = Callable[[RuleOutcome, Stage], None]


class Pipeline:
    """An immutable, ordered list of rules for one stage, built once from a policy."""

    def __init__(
        self,
        stage: Stage,
        rules: Sequence[Rule],
        observer: Observer | None = None,
        tracer: Tracer | None = None,
    ):
        self.stage = stage
        self.rules = tuple(rules)
        self._observer = observer
        self._tracer = tracer or _NO_TRACER

    def with_observer(self, observer: Observer | None, tracer: Tracer | None = None) -> Pipeline:
        """The same rules, reporting each outcome to ``observer`` and as a span on ``tracer``."""
        return Pipeline(self.stage, self.rules, observer, tracer)

    async def run(self, segments: Sequence[Segment], ctx: CheckContext) -> PipelineResult:
        current = tuple(segments)
        outcomes: list[RuleOutcome] = []
        action, route_to = Action.ALLOW, None
        for rule in self.rules:
            outcome = await self._run_rule(rule, current, ctx)
            outcomes.append(outcome)
            if self._observer is not None:
                self._observer(outcome, self.stage)
            verdict = outcome.verdict
            if verdict.action is Action.REDACT:
                current = _redacted(current, verdict.redactions)
            if verdict.action is Action.ROUTE and route_to is None:
                route_to = verdict.route_to
            if verdict.action.severity > action.severity:
                action = verdict.action
            if action is Action.BLOCK:
                break
        return PipelineResult(action, tuple(outcomes), current, route_to)

    async def _run_rule(
        self, rule: Rule, segments: tuple[Segment, ...], ctx: CheckContext
    ) -> RuleOutcome:
        with self._tracer.start_as_current_span(f"guard {rule.id}") as span:
            start = time.perf_counter()
            failed = False
            try:
                async with asyncio.timeout(rule.timeout_s):
                    verdict = _enforce(rule, await rule.check(segments, ctx))
            except Exception as exc:  # any failure of a guard is a verdict, not a crash
                failed = True
                kind = "timed out" if isinstance(exc, TimeoutError) else "failed"
                verdict = _failure(rule, f"{kind} ({type(exc).__name__})")
            duration = time.perf_counter() - start
            if span.is_recording():
                span.set_attributes(
                    {
                        "guard.stage": self.stage.value,
                        "guard.rule": rule.id,
                        "guard.check": rule.check_name,
                        "guard.action": verdict.action.value,
                        "guard.failed": failed,
                        "guard.families": sorted({f.family for f in verdict.findings if f.family}),
                    }
                )
            return RuleOutcome(rule, verdict, duration, failed)


def _enforce(rule: Rule, verdict: Verdict) -> Verdict:
    if verdict.action is Action.ALLOW:
        return verdict
    findings = tuple(replace(f, rule=rule.id) for f in verdict.findings) or (
        Finding(rule.id, f"rule {rule.id} matched"),
    )
    action = rule.action or verdict.action
    if action is Action.REDACT and not verdict.redactions:
        # Asked to redact but the check found nothing it can mask: refuse rather than leak.
        action = Action.BLOCK
    return Verdict(action, findings, verdict.redactions, rule.route_to or verdict.route_to)


def _failure(rule: Rule, kind: str) -> Verdict:
    if rule.on_error == "allow":
        reason = f"check {rule.check_name} {kind}; allowed because the rule fails open"
        return Verdict(Action.FLAG, (Finding(rule.id, reason, family="guard_failure"),))
    reason = f"check {rule.check_name} {kind}; blocked (fail closed)"
    return Verdict(Action.BLOCK, (Finding(rule.id, reason, family="guard_failure"),))


def _redacted(segments: tuple[Segment, ...], redactions: Mapping[int, str]) -> tuple[Segment, ...]:
    return tuple(
        replace(s, text=redactions[i]) if i in redactions else s for i, s in enumerate(segments)
    )

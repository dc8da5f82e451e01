"""The audit log: one structured event per non-allow verdict, as key-values (structlog).

Records rule ids, families, scores and actions, never prompt text or keys.
"""

from __future__ import annotations

import structlog

from gateway.pipeline import Action, CheckContext, PipelineResult
from gateway.tracing import current_trace_id


class Audit:
    def __init__(self) -> None:
        self._log = structlog.get_logger("gateway.audit")

    def verdict(self, result: PipelineResult, ctx: CheckContext, policy: str) -> None:
        if result.action is Action.ALLOW and not result.findings():
            return
        self._log.warning(
            "guard_verdict",
            request_id=ctx.request_id,
            trace_id=current_trace_id(),
            principal=ctx.principal,
            model=ctx.model,
            stage=ctx.stage.value,
            policy=policy,
            action=result.action.value,
            rules=[o.rule.id for o in result.outcomes if o.verdict.action is not Action.ALLOW],
            families=sorted({f.family for f in result.findings() if f.family}),
        )

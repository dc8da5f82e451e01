"""``guardrails_ai``: one Guardrails AI validator as a policy rule, run locally.

The rule names a validator from Guardrails' registry (the gateway's own ``gateway/pii``,
``gateway/secrets``, ``gateway/canary``, or one registered by a module listed in ``modules``),
its constructor ``args`` and Guardrails' ``on_fail``, which sets the rule's action:

=============  ==========  ====================================================
``on_fail``    action      what happens to the failing text
=============  ==========  ====================================================
``exception``  block       refused (input) or cut off (output)
``fix``        redact      replaced by the validator's ``fix_value``; a validator
                           that offers none blocks instead
``filter``     redact      dropped (replaced by an empty text)
``refrain``    block       refused
``noop``       flag        passes; the failure is recorded
=============  ==========  ====================================================

A rule's own ``action`` (e.g. ``shadow``) still overrides, as for every check. Validators get
``metadata`` plus ``role``, ``stage``, ``model`` and, when one was planted, ``canary``. They run
in a worker thread (a validator may be slow or blocking); one that raises blocks the request
unless the rule says ``on_error: allow``. See :mod:`gateway.guardrails_ai` for what "local"
means and how the names are checked at load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from gateway.canary import current_canary
from gateway.checks import register
from gateway.checks.roles import RoleScoped
from gateway.guardrails_ai import ON_FAIL_ACTIONS, OnFail, build_validator, validate
from gateway.openai_api import Segment
from gateway.pipeline import Action, CheckContext, Finding, Verdict


@register("guardrails_ai")
class GuardrailsAI:
    class Settings(RoleScoped):
        validator: str = Field(description="a registered Guardrails validator, e.g. gateway/pii")
        args: dict[str, Any] = Field(
            default_factory=dict, description="the validator's constructor arguments"
        )
        on_fail: OnFail = Field(
            "exception", description="Guardrails' on_fail; sets the action (see the check's doc)"
        )
        modules: list[str] = Field(
            default_factory=list,
            description="modules to import first (dotted names); importing them registers "
            "their validators, e.g. a team's own or a Hub validator installed as a package",
        )
        metadata: dict[str, Any] = Field(
            default_factory=dict, description="passed to the validator with every text"
        )
        family: str = Field("guardrails", description="the family its findings carry")
        plant_canary: bool = Field(
            False,
            description="plant a per-request canary in the system prompt (for gateway/canary)",
        )

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.validator = build_validator(
            settings.validator, settings.on_fail, settings.args, settings.modules
        )
        self.plants_canary = settings.plant_canary

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        s = self.settings
        metadata = {**s.metadata, "stage": str(ctx.stage), "model": ctx.model}
        if (token := current_canary()) is not None:
            metadata["canary"] = token
        action = ON_FAIL_ACTIONS[s.on_fail]
        findings: list[Finding] = []
        redactions: dict[int, str] = {}
        for i, seg in s.scanned(segments):
            md = {**metadata, "role": seg.role}
            failure = await asyncio.to_thread(validate, self.validator, seg.text, md)
            if failure is None:
                continue
            findings.append(
                Finding(
                    "guardrails_ai",
                    f"{s.validator} failed (on_fail={s.on_fail}): {failure.message}",
                    s.family,
                    1.0,
                    i,
                )
            )
            if s.on_fail == "filter":
                redactions[i] = ""
            elif failure.fix_value is not None:
                redactions[i] = failure.fix_value
            elif s.on_fail == "fix":
                action = Action.BLOCK  # nothing to replace the text with: fail closed
        if not findings:
            return Verdict.allow()
        return Verdict(action, tuple(findings), redactions)

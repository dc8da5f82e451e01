"""``canary``: block answers that leak a canary token planted in the system prompt.

Fires on (1) anything shaped like a gateway canary (``gwc-`` + 16 hex digits), whichever request
it came from, and (2) the current request's own canary (:func:`gateway.canary.current_canary`)
or its hex part, after dropping every character that is not a letter or digit, so
``g w c - 1 2 ...`` or a dashed-up copy still counts.

No redaction: a leaked canary means the system prompt leaked with it; masking the marker would
hide the evidence and let the rest through. A rule asking ``redact`` is turned into ``block`` by
the pipeline (it refuses to redact with nothing to mask).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from gateway.canary import TOKEN_RE, current_canary
from gateway.checks import register
from gateway.openai_api import Segment
from gateway.pipeline import Action, CheckContext, Finding, Verdict

_NOT_ALNUM = re.compile(r"[^0-9a-z]")


def _squeeze(text: str) -> str:
    return _NOT_ALNUM.sub("", text.casefold())


def leak_reason(text: str, token: str | None) -> str | None:
    """Why ``text`` leaks a canary (any gateway-shaped one, or ``token`` however spaced)."""
    if TOKEN_RE.search(text):
        return "the answer contains a canary token: the system prompt leaked"
    secret = _squeeze(token.partition("-")[2]) if token else None
    if secret and secret in _squeeze(text):
        return "the answer contains this request's canary: the system prompt leaked"
    return None


@register("canary")
class Canary:
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        roles: list[str] = Field(
            default_factory=lambda: ["assistant"], description="answers, by default"
        )
        action: Action = Action.BLOCK
        plant: bool = Field(
            False,
            description="plant a per-request canary in the system prompt of chat requests "
            "(gateway.canary.plants_canary)",
        )

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._roles = frozenset(settings.roles)
        self.plants_canary = settings.plant

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        token = current_canary()
        findings: list[Finding] = []
        for i, seg in enumerate(segments):
            if seg.role not in self._roles:
                continue
            reason = leak_reason(seg.text, token)
            if reason is None:
                continue
            findings.append(Finding("canary", reason, "prompt_extraction", 1.0, i))
        if not findings:
            return Verdict.allow()
        return Verdict(self.settings.action, tuple(findings))

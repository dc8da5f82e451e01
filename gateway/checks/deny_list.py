"""``deny_list``: named regular expressions over normalised text.

Text is NFKC-normalised, stripped of zero-width characters, case-folded and whitespace-collapsed
before matching, so trivial spacing or full-width tricks don't slip past. Patterns are compiled
once at load; a bad pattern is a load error. The issue-3 detector does the deep work; this is the
cheap, explainable first line.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from gateway.checks import register
from gateway.checks.roles import RoleScoped
from gateway.config_types import Regex
from gateway.openai_api import Segment
from gateway.pipeline import Action, CheckContext, Finding, Verdict

_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    return _SPACE.sub(" ", text).casefold().strip()


class Pattern(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    regex: Regex
    family: str = "deny_list"


@register("deny_list")
class DenyList:
    class Settings(RoleScoped):
        patterns: list[Pattern] = Field(min_length=1)
        action: Action = Action.BLOCK

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._compiled = [(p, re.compile(p.regex, re.IGNORECASE)) for p in settings.patterns]

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        findings: list[Finding] = []
        for i, seg in self.settings.scanned(segments):
            text = normalise(seg.text)
            for pattern, rx in self._compiled:
                m = rx.search(text)
                if m:
                    reason = f"matched deny-list pattern {pattern.name!r}"
                    findings.append(
                        Finding("deny_list", reason, pattern.family, 1.0, i, m.group(0)[:200])
                    )
        if not findings:
            return Verdict.allow()
        return Verdict(self.settings.action, tuple(findings))

"""``size_limit``: refuse requests too large to inspect or serve sensibly."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from gateway.checks import register
from gateway.openai_api import Segment
from gateway.pipeline import Action, CheckContext, Finding, Verdict


@register("size_limit")
class SizeLimit:
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        max_chars_per_segment: int = Field(32_000, ge=1)
        max_total_chars: int = Field(128_000, ge=1)
        max_segments: int = Field(256, ge=1)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        s = self.settings
        findings: list[Finding] = []
        if len(segments) > s.max_segments:
            findings.append(Finding("size_limit", f"{len(segments)} texts > {s.max_segments}"))
        for i, seg in enumerate(segments):
            if len(seg.text) > s.max_chars_per_segment:
                reason = f"a text of {len(seg.text)} chars > {s.max_chars_per_segment}"
                findings.append(Finding("size_limit", reason, segment=i))
                break
        total = sum(len(seg.text) for seg in segments)
        if total > s.max_total_chars:
            findings.append(Finding("size_limit", f"{total} chars in all > {s.max_total_chars}"))
        return Verdict(Action.BLOCK, tuple(findings)) if findings else Verdict.allow()

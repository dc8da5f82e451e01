"""``unicode_smuggling``: characters meant not to be seen are themselves a signal.

Layer 1 of the detector. Scores each scanned segment from its hidden-character counts
(:class:`gateway.detection.normalise.Signals`): tag-character payloads score 1.0 (no legitimate
use outside emoji flags, which are excluded), bidi controls 0.6, zero-width characters inside
words 0.3 + 0.1 each, confusable look-alikes mixed into Latin words 0.3 + 0.1 each (capped at
0.9). Decoded forms are reported as evidence. Default threshold 0.8: tag smuggling blocks,
a few stray zero-widths do not.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from gateway.checks import register
from gateway.detection.normalise import Signals
from gateway.detection.scope import ScopedSettings
from gateway.detection.views import analyse
from gateway.openai_api import Segment
from gateway.pipeline import CheckContext, Finding, Verdict


def smuggling_score(s: Signals) -> tuple[float, str]:
    parts: list[tuple[float, str]] = [(0.0, "none")]
    if s.tag_chars:
        parts.append((1.0, f"{s.tag_chars} tag characters"))
    if s.bidi:
        parts.append((0.6, f"{s.bidi} bidi controls"))
    if s.zero_width_in_words:
        n = s.zero_width_in_words
        parts.append((min(0.9, 0.3 + 0.1 * n), f"{n} zero-width characters inside words"))
    if s.confusables:
        n = s.confusables
        parts.append((min(0.9, 0.3 + 0.1 * n), f"{n} confusable look-alike characters"))
    return max(parts)


@register("unicode_smuggling")
class UnicodeSmuggling:
    class Settings(ScopedSettings):
        threshold: float = Field(0.8, ge=0.0, le=1.0)
        indirect_threshold: float = Field(0.8, ge=0.0, le=1.0)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        findings: list[Finding] = []
        for i, seg in self.settings.scanned(segments):
            analysed = analyse(seg.text)
            score, what = smuggling_score(analysed.signals)
            if score < self.settings.threshold_for(seg.role):
                continue
            canonical = analysed.views[0].text
            decoded = [v for v in analysed.views if v.decoded]
            evidence = f"{decoded[0].label}: {decoded[0].raw}" if decoded else canonical
            findings.append(
                Finding(
                    "unicode_smuggling",
                    f"hidden characters: {what}",
                    "unicode_smuggling",
                    score,
                    i,
                    evidence[:300],
                )
            )
        if not findings:
            return Verdict.allow()
        return Verdict(self.settings.action, tuple(findings))

"""``injection_signatures``: curated, versioned rules over every view of every scanned segment.

Layer 2 of the detector (:mod:`gateway.detection`). Each segment is analysed into views
(original, canonical, decoded base64/hex/URL/ROT13/leetspeak/tag characters, nested); a rule
fires if it matches any view. Findings carry the rule's family, score, the rule id and version,
and the decoded text that triggered it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from gateway.checks import register
from gateway.detection.paths import SIGNATURES, bundled
from gateway.detection.scope import ScopedSettings
from gateway.detection.signatures import load_signatures
from gateway.detection.views import analyse
from gateway.openai_api import Segment
from gateway.pipeline import CheckContext, Finding, Verdict


@register("injection_signatures")
class InjectionSignatures:
    class Settings(ScopedSettings):
        rules_file: Path | None = Field(
            None, description="signature rules (YAML); default: the bundled one"
        )
        threshold: float = Field(0.7, ge=0.0, le=1.0)
        indirect_threshold: float = Field(0.8, ge=0.0, le=1.0)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.signatures = load_signatures(bundled(settings.rules_file, SIGNATURES))

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        findings: list[Finding] = []
        for i, seg in self.settings.scanned(segments):
            threshold = self.settings.threshold_for(seg.role)
            for m in self.signatures.match(analyse(seg.text)):
                if m.rule.score < threshold:
                    continue
                where = f" in {m.view} text" if m.decoded is not None else ""
                reason = f"signature {m.rule.id} v{m.rule.version} ({m.rule.family}){where}"
                evidence = m.matched if m.decoded is None else f"{m.view}: {m.decoded}"
                findings.append(
                    Finding(
                        "injection_signatures",
                        reason,
                        m.rule.family,
                        m.rule.score,
                        i,
                        evidence[:300],
                    )
                )
        if not findings:
            return Verdict.allow()
        return Verdict(self.settings.action, tuple(findings))

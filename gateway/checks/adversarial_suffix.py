"""``adversarial_suffix``: optimised (GCG-style) gibberish suffixes.

Layer 4 of the detector: a character-trigram surprise score
(:mod:`gateway.detection.gibberish`), calibrated so 0.5 is the benign 99.5th percentile.
Tool content is often code or tables, so its threshold is higher by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from gateway.checks import register
from gateway.detection.gibberish import load_gibberish
from gateway.detection.paths import GIBBERISH, bundled
from gateway.detection.scope import ScopedSettings
from gateway.errors import ConfigError
from gateway.openai_api import Segment
from gateway.pipeline import CheckContext, Finding, Verdict


@register("adversarial_suffix")
class AdversarialSuffix:
    class Settings(ScopedSettings):
        model_file: Path | None = Field(
            None, description="trained gibberish model (.npz); default: the bundled one"
        )
        threshold: float = Field(0.5, ge=0.0, le=1.0)
        indirect_threshold: float = Field(0.9, ge=0.0, le=1.0)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        model_file = bundled(settings.model_file, GIBBERISH)
        try:
            self.model = load_gibberish(model_file)
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot load suffix model {model_file}: {exc}") from None

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        findings: list[Finding] = []
        for i, seg in self.settings.scanned(segments):
            score = self.model.score(seg.text)
            if score < self.settings.threshold_for(seg.role):
                continue
            reason = f"text looks like an optimised adversarial suffix (score {score:.2f})"
            findings.append(
                Finding(
                    "adversarial_suffix", reason, "adversarial_suffix", score, i, seg.text[-200:]
                )
            )
        if not findings:
            return Verdict.allow()
        return Verdict(self.settings.action, tuple(findings))

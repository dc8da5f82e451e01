"""``injection_lexical``: TF-IDF word and character n-grams and a trained logistic regression.

Layer 3a of the detector (:mod:`gateway.detection.lexical`): the learned layer cheap enough to
run by default. It scores every view of a segment (canonical original and decoded forms) by its
best run of 2-32 words, and blocks above the head's calibrated threshold; the finding's evidence
is that run (benign words around it are left out).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.checks import register
from gateway.detection.lexical import load_lexical
from gateway.detection.paths import LEXICAL, bundled
from gateway.detection.scope import HeadSettings
from gateway.detection.views import analyse
from gateway.errors import ConfigError
from gateway.openai_api import Segment
from gateway.pipeline import CheckContext, Finding, Verdict


@register("injection_lexical")
class InjectionLexical:
    Settings = HeadSettings

    def __init__(self, settings: HeadSettings) -> None:
        self.settings = settings
        head_file = bundled(settings.head_file, LEXICAL)
        try:
            self.head = load_lexical(head_file)
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot load lexical head {head_file}: {exc}") from None
        self.threshold, self.indirect_threshold = settings.resolved(self.head.threshold)

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        findings: list[Finding] = []
        for i, seg in self.settings.scanned(segments):
            indirect = seg.role in self.settings.indirect_roles
            threshold = self.indirect_threshold if indirect else self.threshold
            scored = [(self.head.best(v.text), v) for v in analyse(seg.text).views]
            (score, run), view = max(scored, key=lambda sv: sv[0][0])
            if score < threshold:
                continue
            where = f" in {view.label} text" if view.decoded else ""
            reason = f"lexical injection score {score:.2f}{where}"
            evidence = run if not view.decoded else f"{view.label}: {run}"
            findings.append(
                Finding("injection_lexical", reason, "lexical", score, i, evidence[:300])
            )
        if not findings:
            return Verdict.allow()
        return Verdict(self.settings.action, tuple(findings))

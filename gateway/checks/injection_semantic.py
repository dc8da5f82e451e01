"""``injection_semantic``: MiniLM embeddings + a trained head + nearest known attacks.

Layer 3 of the detector (:mod:`gateway.detection.semantic`). The model loads lazily (a
background warm-up starts when the check is built, unless ``preload: false``); scoring runs in
a worker thread (``anyio.to_thread``) so the event loop keeps serving. A missing head file is a
load error; a model that fails to load raises at call time, which the pipeline turns into a
block (fail closed). Much slower than the other layers on CPU: see docs/detection.md.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import anyio.to_thread
from pydantic import Field

from gateway.checks import register
from gateway.detection.paths import HEAD, bundled
from gateway.detection.scope import HeadSettings
from gateway.detection.semantic import SemanticScorer
from gateway.errors import ConfigError
from gateway.openai_api import Segment
from gateway.pipeline import CheckContext, Finding, Verdict


@register("injection_semantic")
class InjectionSemantic:
    class Settings(HeadSettings):
        preload: bool = Field(True, description="load the model in the background at startup")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        head_file = bundled(settings.head_file, HEAD)
        try:
            self.scorer = SemanticScorer(head_file)
        except OSError as exc:
            raise ConfigError(f"cannot load semantic head {head_file}: {exc}") from None
        self.threshold, self.indirect_threshold = settings.resolved(self.scorer.head.threshold)
        if settings.preload:
            threading.Thread(target=self._warm, name="semantic-warm", daemon=True).start()

    def _warm(self) -> None:
        try:
            self.scorer.warm()
        except Exception:  # a failed warm-up surfaces (and blocks) at call time
            return

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        scanned = list(self.settings.scanned(segments))
        if not scanned:
            return Verdict.allow()
        results = await anyio.to_thread.run_sync(
            self.scorer.score, [seg.text for _, seg in scanned]
        )
        findings: list[Finding] = []
        for (i, seg), r in zip(scanned, results, strict=True):
            indirect = seg.role in self.settings.indirect_roles
            if r.score < (self.indirect_threshold if indirect else self.threshold):
                continue
            family = r.family or "semantic"
            reason = f"semantic injection score {r.score:.2f} (head {r.head:.2f}, kNN {r.knn:.2f})"
            findings.append(
                Finding("injection_semantic", reason, family, r.score, i, r.evidence[:300])
            )
        if not findings:
            return Verdict.allow()
        return Verdict(self.settings.action, tuple(findings))

